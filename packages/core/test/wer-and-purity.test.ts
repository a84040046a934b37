import { wordErrorRate, normaliseWords, parseS3Url, outputKeyBase, InvalidS3UrlError, parseFailedReason, formatFailedReason, SourceChangedError } from '../src';

describe('WER', () => {
  it('counts substitutions, deletions and insertions over reference words', () => {
    expect(wordErrorRate('the cat sat', 'the cat sat')).toBe(0);
    expect(wordErrorRate('the cat sat', 'the bat sat')).toBeCloseTo(1 / 3);
    expect(wordErrorRate('the cat sat', 'the sat')).toBeCloseTo(1 / 3);
    expect(wordErrorRate('the cat sat', 'the cat sat down')).toBeCloseTo(1 / 3);
    expect(normaliseWords('Hello, World!  It\'s')).toEqual(['hello', 'world', "it's"]);
  });
});

describe('S3 URLs', () => {
  it('parses bucket and key, rejects bad ones', () => {
    expect(parseS3Url('s3://my-bucket/a/b.wav')).toEqual({ bucket: 'my-bucket', key: 'a/b.wav' });
    expect(parseS3Url('s3://my-bucket')).toEqual({ bucket: 'my-bucket', key: '' });
    for (const bad of ['http://x/y', 's3://A_B/x', 's3://ab/x', '', 's3:///x']) expect(() => parseS3Url(bad)).toThrow(InvalidS3UrlError);
  });

  it('maps keys like `aws s3 cp --recursive`', () => {
    expect(outputKeyBase('in/a/b.wav', 'in/', 'out/')).toBe('out/a/b.wav');
    expect(outputKeyBase('in/rec1.wav', 'in/rec', 'out')).toBe('out/rec1.wav');
    expect(outputKeyBase('x.wav', '', 'out/')).toBe('out/x.wav');
  });
});

describe('errors', () => {
  it('failed reasons round-trip their stable code', () => {
    const e = new SourceChangedError('etag moved');
    expect(e).toBeInstanceOf(SourceChangedError);
    expect(e.code).toBe('SOURCE_CHANGED');
    expect(e.kind).toBe('unrecoverable');
    expect(parseFailedReason(formatFailedReason(e))).toEqual({ code: 'SOURCE_CHANGED', message: 'etag moved' });
  });
});
