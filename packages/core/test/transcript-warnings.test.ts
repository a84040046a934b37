import { fromDeepgramJson, render, segmentFromWords, toDeepgramJson, TRANSCRIPT_WARNINGS, transcriptWarnings, type Transcript } from '../src';

const meta = { sha256: 'a'.repeat(64), created: '2026-01-01T00:00:00.000Z' };

function transcript(words: Array<[string, number, number]>, extra: Partial<Transcript> = {}): Transcript {
  const segments = words.length ? [segmentFromWords(words.map(([word, start, end]) => ({ word, start, end, confidence: 0.8 })))] : [];
  return { provider: 'local', model: 'pocketsphinx-en-us', requestId: 'r', duration: 3, channels: 1, segments, ...extra };
}

describe('transcriptWarnings', () => {
  it('says NO_SPEECH for a transcript without words', () => {
    expect(transcriptWarnings(transcript([]))).toEqual(['NO_SPEECH']);
    expect(TRANSCRIPT_WARNINGS.NO_SPEECH).toBe('NO_SPEECH');
  });

  it('says nothing for a transcript with words', () => {
    expect(transcriptWarnings(transcript([['hello', 0.1, 0.4]]))).toEqual([]);
  });

  it('an empty segment (an utterance with nothing recognised) is still no speech', () => {
    const t = transcript([]);
    t.segments.push({ start: 0, end: 1, text: '  ', words: [], confidence: 0 });
    expect(transcriptWarnings(t)).toEqual(['NO_SPEECH']);
  });

  it('a segment with text but no word timings counts as speech', () => {
    const t = transcript([]);
    t.segments.push({ start: 0, end: 1, text: 'hello', words: [], confidence: 0.5 });
    expect(transcriptWarnings(t)).toEqual([]);
  });

  it('adds the given warnings, keeps the transcript’s own, and lists each code once', () => {
    const t = transcript([], { warnings: ['TRUNCATED_INPUT'] });
    expect(transcriptWarnings(t, ['TRUNCATED_INPUT', 'NO_SPEECH', 'OTHER', 'OTHER'])).toEqual(['TRUNCATED_INPUT', 'NO_SPEECH', 'OTHER']);
    expect(transcriptWarnings(transcript([['hi', 0, 0.2]]), new Set(['TRUNCATED_INPUT']))).toEqual(['TRUNCATED_INPUT']);
  });

  it('does not modify the transcript', () => {
    const t = transcript([]);
    transcriptWarnings(t, ['TRUNCATED_INPUT']);
    expect(t.warnings).toBeUndefined();
  });
});

describe('warnings in the JSON output', () => {
  it('are rendered at metadata.warnings (deduplicated) and parsed back', () => {
    const t = transcript([['hello', 0.1, 0.4]], { warnings: ['TRUNCATED_INPUT', 'TRUNCATED_INPUT'] });
    const json = toDeepgramJson(t, meta);
    expect(json.metadata.warnings).toEqual(['TRUNCATED_INPUT']);
    const back = fromDeepgramJson(JSON.parse(render(t, 'json', meta)));
    expect(back.warnings).toEqual(['TRUNCATED_INPUT']);
    expect(back.segments[0]!.words[0]!.word).toBe('hello');
  });

  it('a transcript without warnings (or with none) has no metadata.warnings, and parses back without', () => {
    for (const t of [transcript([['a', 0, 0.1]]), transcript([['a', 0, 0.1]], { warnings: [] })]) {
      const json = toDeepgramJson(t, meta);
      expect('warnings' in json.metadata).toBe(false);
      expect(fromDeepgramJson(json).warnings).toBeUndefined();
    }
  });

  it('NO_SPEECH from the helper survives the round trip', () => {
    const t = transcript([]);
    const withWarnings = { ...t, warnings: transcriptWarnings(t) };
    const back = fromDeepgramJson(JSON.parse(render(withWarnings, 'json', meta)));
    expect(back.warnings).toEqual(['NO_SPEECH']);
    expect(transcriptWarnings(back)).toEqual(['NO_SPEECH']);
  });

  it('ignores non-string entries in a hand-edited document', () => {
    const json = toDeepgramJson(transcript([['a', 0, 0.1]], { warnings: ['NO_SPEECH'] }), meta);
    (json.metadata as { warnings: unknown[] }).warnings = ['NO_SPEECH', 7, null];
    expect(fromDeepgramJson(json).warnings).toEqual(['NO_SPEECH']);
  });

  it('TXT, SRT and VTT are unchanged by warnings', () => {
    const t = transcript([['hello', 0.1, 0.4]]);
    const w = { ...t, warnings: ['TRUNCATED_INPUT'] };
    for (const f of ['txt', 'srt', 'vtt'] as const) expect(render(w, f, meta)).toBe(render(t, f, meta));
  });
});
