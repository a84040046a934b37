import { fromDeepgramJson, render, segmentFromWords, srtTimestamp, toCues, toDeepgramJson, toSrt, toTxt, toVtt, vttTimestamp, type Transcript } from '../src';

const words = (spec: Array<[string, number, number]>) => spec.map(([word, start, end]) => ({ word, start, end, confidence: 0.9 }));

const t: Transcript = {
  provider: 'local',
  model: 'pocketsphinx-en-us',
  requestId: 'req-1',
  duration: 3725.5,
  channels: 1,
  segments: [
    segmentFromWords(words([['hello', 0.5, 0.9], ['world', 1.0, 1.4]])),
    segmentFromWords(words([['one', 3723.001, 3723.4], ['hour', 3723.5, 3724.0]])),
  ],
};

describe('timestamps', () => {
  it('SRT uses a comma, VTT a dot, both HH:MM:SS and milliseconds', () => {
    expect(srtTimestamp(0)).toBe('00:00:00,000');
    expect(vttTimestamp(0)).toBe('00:00:00.000');
    expect(srtTimestamp(3723.0015)).toBe('01:02:03,002');
    expect(vttTimestamp(59.9996)).toBe('00:01:00.000');
    expect(srtTimestamp(1.5)).toBe('00:00:01,500');
    expect(vttTimestamp(100 * 3600 + 0.25)).toBe('100:00:00.250');
  });
});

describe('formatters', () => {
  it('SRT numbers cues from 1 with comma timestamps', () => {
    expect(toSrt(t)).toBe('1\n00:00:00,500 --> 00:00:01,400\nhello world\n\n2\n01:02:03,001 --> 01:02:04,000\none hour\n');
  });

  it('VTT starts with the WEBVTT header and uses dot timestamps', () => {
    expect(toVtt(t)).toBe('WEBVTT\n\n00:00:00.500 --> 00:00:01.400\nhello world\n\n01:02:03.001 --> 01:02:04.000\none hour\n');
  });

  it('TXT has one segment per line', () => {
    expect(toTxt(t)).toBe('hello world\none hour\n');
  });

  it('long segments are split into cues no longer than the limits', () => {
    const many = Array.from({ length: 60 }, (_, i) => ['word' + i, i * 0.5, i * 0.5 + 0.4] as [string, number, number]);
    const cues = toCues([segmentFromWords(words(many))]);
    expect(cues.length).toBeGreaterThan(4);
    for (const c of cues) {
      expect(c.end - c.start).toBeLessThanOrEqual(7);
      expect(c.text.length).toBeLessThanOrEqual(84);
    }
    for (let i = 1; i < cues.length; i++) expect(cues[i]!.start).toBeGreaterThanOrEqual(cues[i - 1]!.end);
  });

  it('JSON follows the Deepgram pre-recorded shape and round-trips', () => {
    const json = toDeepgramJson(t, { sha256: 'f'.repeat(64), created: '2026-01-01T00:00:00.000Z' });
    expect(json.metadata).toMatchObject({ transaction_key: 'deprecated', request_id: 'req-1', sha256: 'f'.repeat(64), duration: 3725.5, channels: 1 });
    expect(json.metadata.models).toHaveLength(1);
    const alt = json.results.channels[0]!.alternatives[0]!;
    expect(alt.transcript).toBe('hello world one hour');
    expect(alt.words[0]).toEqual({ word: 'hello', start: 0.5, end: 0.9, confidence: 0.9 });
    const back = fromDeepgramJson(JSON.parse(render(t, 'json', { sha256: 'x', created: 'y' })));
    expect(toSrt(back)).toBe(toSrt(t));
  });
});

describe('channels and speakers (issue 16)', () => {
  // Two channels talking over each other: left 0.16–3.91 s, right 0.23–2.0 s.
  const left = segmentFromWords(words([['it', 0.16, 0.3], ['is', 0.35, 0.5], ['an', 0.6, 0.7], ['hour', 3.68, 3.91]]), 0);
  const right = segmentFromWords(words([['right', 0.23, 0.6], ['now', 0.7, 2.0]]), 1);
  const stereo: Transcript = { provider: 'deepgram', model: 'nova-3', requestId: 'r', duration: 4, channels: 2, segments: [left, right] };

  it('JSON: one results.channels entry per channel, each with only its own words in time order', () => {
    const json = toDeepgramJson(stereo, { sha256: 'x', created: 'now' });
    expect(json.metadata.channels).toBe(2);
    expect(json.results.channels).toHaveLength(2);
    expect(json.results.channels[0]!.alternatives[0]!.words.map((w) => w.word)).toEqual(['it', 'is', 'an', 'hour']);
    expect(json.results.channels[1]!.alternatives[0]!.words.map((w) => w.word)).toEqual(['right', 'now']);
    expect(json.results.channels[1]!.alternatives[0]!.transcript).toBe('right now');
    for (const ch of json.results.channels) {
      const starts = ch.alternatives[0]!.words.map((w) => w.start);
      expect(starts).toEqual([...starts].sort((a, b) => a - b));
    }
    expect(json.results.utterances.map((u) => u.channel)).toEqual([0, 1]);
    expect(fromDeepgramJson(json).segments.map((s) => s.channel)).toEqual([0, 1]);
  });

  it('SRT/VTT/TXT: cues labelled by channel, in time order across channels, timed as their words (overlaps across channels kept)', () => {
    const cues = toCues(stereo.segments);
    // The left channel's pause (0.7 → 3.68 s) splits it; nothing is cut to the other channel's start.
    expect(cues.map((c) => [c.channel, c.start, c.end, c.text])).toEqual([
      [0, 0.16, 0.7, 'it is an'],
      [1, 0.23, 2.0, 'right now'],
      [0, 3.68, 3.91, 'hour'],
    ]);
    expect(toSrt(stereo)).toBe(
      '1\n00:00:00,160 --> 00:00:00,700\n[channel 0] it is an\n\n2\n00:00:00,230 --> 00:00:02,000\n[channel 1] right now\n\n3\n00:00:03,680 --> 00:00:03,910\n[channel 0] hour\n',
    );
    expect(toVtt(stereo)).toContain('00:00:00.230 --> 00:00:02.000\n<v Channel 1>right now\n');
    expect(toTxt(stereo)).toBe('[channel 0] it is an hour\n[channel 1] right now\n');
  });

  it('speakers: kept on utterances in the JSON, and labelled in every text format; one speaker is not labelled', () => {
    const w = (word: string, start: number, end: number, speaker: number) => ({ word, start, end, confidence: 0.9, speaker });
    const seg = segmentFromWords([w('hello', 0, 0.4, 0), w('there', 0.5, 0.9, 0), w('hi', 1.0, 1.2, 1)]);
    const d: Transcript = { provider: 'deepgram', model: 'nova-3', requestId: 'r', duration: 2, channels: 1, segments: [{ ...seg }, { ...segmentFromWords([w('bye', 1.5, 1.8, 1)]), speaker: 1 }] };
    const json = toDeepgramJson(d, { sha256: 'x', created: 'now' });
    expect(json.results.utterances[1]).toMatchObject({ speaker: 1, transcript: 'bye' });
    expect(fromDeepgramJson(json).segments[1]!.speaker).toBe(1);
    expect(toTxt(d)).toBe('Speaker 0: hello there\nSpeaker 1: hi\nSpeaker 1: bye\n');
    expect(toSrt(d)).toContain('00:00:00,000 --> 00:00:00,900\nSpeaker 0: hello there\n');
    expect(toSrt(d)).toContain('00:00:01,000 --> 00:00:01,200\nSpeaker 1: hi\n');
    expect(toVtt(d)).toContain('<v Speaker 1>bye\n');
    const one: Transcript = { ...d, segments: [segmentFromWords([w('alone', 0, 0.5, 0)])] };
    expect(toTxt(one)).toBe('alone\n');
    expect(toSrt(one)).not.toContain('Speaker');
  });
});
