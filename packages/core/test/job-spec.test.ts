import { jobIdFor, parseJobSpec, InvalidJobSpecError, UnsupportedCombinationError, type JobSpecInput } from '../src';

const base: JobSpecInput = {
  source: { bucket: 'archive', key: 'calls/2019/a.wav', etag: 'abc123', size: 10 },
  output: { bucket: 'archive', keyBase: 'out/calls/2019/a.wav' },
};

describe('job ids', () => {
  it('same input gives the same id, whatever the key order', () => {
    const a = jobIdFor(parseJobSpec(base));
    const reordered = { output: { keyBase: 'out/calls/2019/a.wav', bucket: 'archive' }, source: { size: 10, etag: 'abc123', key: 'calls/2019/a.wav', bucket: 'archive' } };
    expect(jobIdFor(parseJobSpec(reordered))).toBe(a);
    expect(a).toMatch(/^tx_[0-9a-f]{40}$/);
  });

  it('a changed ETag, versionId, option, provider, model or mode gives a new id', () => {
    const id = jobIdFor(parseJobSpec(base));
    const variants: JobSpecInput[] = [
      { ...base, source: { ...base.source, etag: 'def456' } },
      { ...base, source: { ...base.source, versionId: 'v2' } },
      { ...base, options: { punctuate: true } },
      { ...base, mode: 'stream' },
      { ...base, provider: 'deepgram' },
      { ...base, provider: 'deepgram', model: 'nova-2' },
      { ...base, output: { ...base.output, keyBase: 'other/a.wav' } },
      { ...base, account: 'project-b' },
    ];
    const ids = variants.map((v) => jobIdFor(parseJobSpec(v)));
    expect(new Set([id, ...ids]).size).toBe(variants.length + 1);
  });

  it('the object size and batch id are not part of the identity', () => {
    const id = jobIdFor(parseJobSpec(base));
    expect(jobIdFor(parseJobSpec({ ...base, source: { ...base.source, size: 99 }, batchId: 'b1' }))).toBe(id);
  });

  it('never contains a colon and is never all digits (BullMQ custom id rules)', () => {
    const id = jobIdFor(parseJobSpec(base));
    expect(id).not.toContain(':');
    expect(/^\d+$/.test(id)).toBe(false);
  });
});

describe('job spec validation', () => {
  it('names every problem', () => {
    expect(() => parseJobSpec({ source: { bucket: 'x' }, output: {} })).toThrow(InvalidJobSpecError);
    try {
      parseJobSpec({ source: { bucket: 'x' }, output: {} });
    } catch (e) {
      expect((e as Error).message).toMatch(/source\.key/);
      expect((e as Error).message).toMatch(/output\.keyBase/);
    }
  });

  it('rejects Whisper streaming (Deepgram Whisper Cloud is pre-recorded only)', () => {
    expect(() => parseJobSpec({ ...base, provider: 'deepgram', model: 'whisper-large', mode: 'stream' })).toThrow(UnsupportedCombinationError);
    expect(parseJobSpec({ ...base, provider: 'deepgram', model: 'whisper-large', mode: 'batch' }).mode).toBe('batch');
  });

  it('fills the provider default model', () => {
    expect(parseJobSpec(base).model).toBe('pocketsphinx-en-us');
    expect(parseJobSpec({ ...base, provider: 'deepgram' }).model).toBe('nova-3');
  });
});
