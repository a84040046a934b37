import { batchProgress, parseManifest, type BatchRecord } from '../src';

describe('manifests', () => {
  it('parses JSONL with per-file options and bare keys against a default bucket', () => {
    const text = ['{"source":"s3://arch/a.wav","options":{"diarize":true}}', '', '# comment', '{"key":"b/c.mp3"}'].join('\n');
    const m = parseManifest(text, 'jsonl', 'arch');
    expect(m.errors).toEqual([]);
    expect(m.entries).toEqual([
      { line: 1, location: { bucket: 'arch', key: 'a.wav' }, options: { diarize: true } },
      { line: 4, location: { bucket: 'arch', key: 'b/c.mp3' } },
    ]);
  });

  it('parses CSV with a header, quoted JSON options', () => {
    const text = 'source,options\ns3://arch/x.wav,"{""language"":""de""}"\ns3://arch/y.wav\n';
    const m = parseManifest(text, 'csv');
    expect(m.errors).toEqual([]);
    expect(m.entries.map((e) => [e.location.key, e.options])).toEqual([['x.wav', { language: 'de' }], ['y.wav', undefined]]);
  });

  it('names every bad line', () => {
    const text = ['{"source":"s3://arch/ok.wav"}', 'not json', '{"source":"http://x/y"}', '{"nosource":1}', '{"source":"s3://arch/ok.wav"}', '{"source":"s3://arch/dir/"}', '{"source":"s3://arch/z.wav","options":{"a":{"b":1}}}'].join('\n');
    const m = parseManifest(text, 'jsonl');
    expect(m.entries).toHaveLength(1);
    expect(m.errors.map((e) => e.line)).toEqual([2, 3, 4, 5, 6, 7]);
    expect(m.errors.find((e) => e.line === 5)!.message).toMatch(/duplicate of line 1/);
    expect(m.errors.find((e) => e.line === 2)!.message).toMatch(/JSON/);
  });
});

describe('batch progress', () => {
  const base: BatchRecord = {
    id: 'b', createdAt: '2026-01-01T00:00:00.000Z', status: 'running', source: 's3://a/b/', out: 's3://a/o/', provider: 'local', mode: 'batch',
    total: 10, bytesTotal: 1000, bytesDone: 250, audioSecondsDone: 60,
    counts: { queued: 5, active: 2, completed: 2, failed: 1, cancelled: 0, skipped: 0 },
  };
  it('estimates total audio from bytes and the ETA from the rate', () => {
    const p = batchProgress(base, Date.parse('2026-01-01T00:01:00.000Z'));
    expect(p.done).toBe(3);
    expect(p.audioSecondsTotalEstimate).toBe(240);
    expect(p.filesPerSecond).toBeCloseTo(3 / 60);
    expect(p.etaSeconds).toBeCloseTo(7 / (3 / 60));
  });
  it('is exact once finished', () => {
    const p = batchProgress({ ...base, status: 'finished', finishedAt: '2026-01-01T00:02:00.000Z', counts: { ...base.counts, queued: 0, active: 0, completed: 9 } });
    expect(p.audioSecondsTotalEstimate).toBe(60);
    expect(p.etaSeconds).toBe(0);
  });
});
