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
