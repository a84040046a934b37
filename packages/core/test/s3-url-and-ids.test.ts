/**
 * The path-safety rules of S3 URLs and output keys (domain/s3-url.ts), the allow-list and id checks
 * of the attorney (app/validate.ts), and the id patterns against the ids the code really makes.
 * The same refusals through the API, the worker and the CLI: test/security/.
 */
import { BucketNotAllowedError, InvalidRequestError, InvalidS3UrlError, isBatchId, isJobId, jobIdFor, newBatchId, outputKeyBase, parseJobSpec, parseS3Url, unsafeKeyReason } from '../src';
import { assertBatchId, assertBucketAllowed, assertJobId, assertManifestEntry, assertSpecAllowed, reportLocation, validateCreateBatch } from '../src/app/validate';

describe('parseS3Url refuses keys that could address something else', () => {
  const refused = [
    's3://arch/../bad/x/',
    's3://arch/in/../../bad/',
    's3://arch/./in/',
    's3://arch/in/.',
    's3://arch/in/..',
    's3://arch//in/',
    's3://arch/in//x/',
    's3://arch//',
    's3://arch/in\\..\\x/',
    's3://arch/in/a\u0000b',
    's3://arch/in/a\nb',
    's3://arch/in/a\u007fb',
    's3://arch/in/a\u0085b',
    's3://arch/%2e%2e/bad/',
    's3://arch/in/%2E./x',
    's3://arch/in/%2f%2fx',
    's3://arch/in/%5c',
    's3://arch/in/a%00b',
  ];
  it.each(refused)('%j → INVALID_S3_URL', (url) => {
    expect(() => parseS3Url(url)).toThrow(InvalidS3UrlError);
  });

  it('accepts plain keys and prefixes as spelled (trailing / on a prefix, dots inside names, %20)', () => {
    expect(parseS3Url('s3://arch/in/')).toEqual({ bucket: 'arch', key: 'in/' });
    expect(parseS3Url('s3://arch')).toEqual({ bucket: 'arch', key: '' });
    expect(parseS3Url('s3://arch/')).toEqual({ bucket: 'arch', key: '' });
    expect(parseS3Url('s3://arch/in/rec')).toEqual({ bucket: 'arch', key: 'in/rec' });
    expect(parseS3Url('s3://arch/a..b/.hidden/x.y.wav')).toEqual({ bucket: 'arch', key: 'a..b/.hidden/x.y.wav' });
    expect(parseS3Url('s3://arch/my%20file ü.wav')).toEqual({ bucket: 'arch', key: 'my%20file ü.wav' });
  });

  it('an object key may not end with / or be empty; a prefix may', () => {
    expect(unsafeKeyReason('in/', { prefix: true })).toBeNull();
    expect(unsafeKeyReason('', { prefix: true })).toBeNull();
    expect(unsafeKeyReason('in/')).toMatch(/empty path segment/);
    expect(unsafeKeyReason('')).toMatch(/empty path segment/);
    expect(unsafeKeyReason('%2e%2e/x')).toMatch(/percent-encoded/);
  });
});

describe('outputKeyBase stays under the output prefix or throws', () => {
  it('builds keys as before for plain keys', () => {
    expect(outputKeyBase('in/a/b.wav', 'in/', 'out/')).toBe('out/a/b.wav');
    expect(outputKeyBase('in/rec1.wav', 'in/rec', 'out')).toBe('out/rec1.wav');
    expect(outputKeyBase('x.wav', '', '')).toBe('x.wav');
  });
  it.each([
    ['in/../../bad/x.wav', 'in/', 'out/'],
    ['in/a/../x.wav', 'in/', 'out/'],
    ['in//x.wav', 'in/', 'out/'],
    ['in/a\\..\\x.wav', 'in/', 'out/'],
    ['in/a\u0001.wav', 'in/', 'out/'],
    ['in/%2e%2e/x.wav', 'in/', 'out/'],
    ['in/', 'in/', 'out/'],
    ['in/x.wav', 'in/', '../out/'],
    ['in/x.wav', 'in/', 'out//'],
  ])('%j listed under %j to %j → INVALID_S3_URL', (key, listed, out) => {
    expect(() => outputKeyBase(key, listed, out)).toThrow(InvalidS3UrlError);
  });
});

describe('the allow-list (validate.ts)', () => {
  const cfg = { S3_ALLOWED_BUCKETS: ['arch'] };
  it('an empty list allows any bucket', () => {
    expect(() => assertBucketAllowed([], 'anything')).not.toThrow();
    expect(() => validateCreateBatch({ S3_ALLOWED_BUCKETS: [] }, { source: 's3://a-b/in/', out: 's3://c-d/out/' })).not.toThrow();
  });
  it('source, out and the manifest default bucket are checked', () => {
    expect(() => validateCreateBatch(cfg, { source: 's3://bad/in/', out: 's3://arch/out/' })).toThrow(BucketNotAllowedError);
    expect(() => validateCreateBatch(cfg, { source: 's3://arch/in/', out: 's3://bad/out/' })).toThrow(BucketNotAllowedError);
    expect(() => validateCreateBatch(cfg, { manifest: { text: 'a.wav', format: 'csv', defaultBucket: 'bad' }, out: 's3://arch/out/' })).toThrow(BucketNotAllowedError);
    expect(() => validateCreateBatch(cfg, { source: 's3://arch/in/', out: 's3://arch/../bad/x/' })).toThrow(InvalidS3UrlError);
  });
  it('each manifest entry: its bucket and its key', () => {
    expect(() => assertManifestEntry(cfg, { line: 3, location: { bucket: 'bad', key: 'x.wav' } })).toThrow(expect.objectContaining({ code: 'BUCKET_NOT_ALLOWED', message: expect.stringMatching(/^manifest line 3: bucket bad/) }));
    expect(() => assertManifestEntry(cfg, { line: 4, location: { bucket: 'arch', key: '../bad/x.wav' } })).toThrow(expect.objectContaining({ code: 'INVALID_S3_URL', message: expect.stringMatching(/^manifest line 4:/) }));
    expect(() => assertManifestEntry(cfg, { line: 5, location: { bucket: 'arch', key: 'in/x.wav' } })).not.toThrow();
  });
  it('a spec on the worker: both buckets and both keys', () => {
    const spec = (source: string, out: string, key = 'in/x.wav', keyBase = 'out/x') => ({ source: { bucket: source, key, etag: 'e' }, output: { bucket: out, keyBase, formats: ['json' as const] } });
    expect(() => assertSpecAllowed(['arch'], spec('bad', 'arch'))).toThrow(expect.objectContaining({ code: 'BUCKET_NOT_ALLOWED', message: expect.stringMatching(/^source bucket bad/) }));
    expect(() => assertSpecAllowed(['arch'], spec('arch', 'bad'))).toThrow(expect.objectContaining({ code: 'BUCKET_NOT_ALLOWED', message: expect.stringMatching(/^output bucket bad/) }));
    expect(() => assertSpecAllowed(['arch'], spec('arch', 'arch', 'in/x.wav', '../bad/x'))).toThrow(InvalidS3UrlError);
    expect(() => assertSpecAllowed(['arch'], spec('arch', 'arch', 'in//x.wav'))).toThrow(InvalidS3UrlError);
    expect(() => assertSpecAllowed([], spec('bad', 'other'))).not.toThrow();
    expect(() => assertSpecAllowed(['arch'], spec('arch', 'arch'))).not.toThrow();
  });
  it('the report location: under out, in an allowed bucket, for a well-formed batch id', () => {
    const id = 'b_20240101-000000_0a1b2c3d';
    expect(reportLocation(cfg, 's3://arch/out', id)).toEqual({ bucket: 'arch', base: `out/_reports/${id}` });
    expect(reportLocation(cfg, 's3://arch/out/', id)).toEqual({ bucket: 'arch', base: `out/_reports/${id}` });
    expect(() => reportLocation(cfg, 's3://bad/out/', id)).toThrow(BucketNotAllowedError);
    expect(() => reportLocation(cfg, 's3://arch/../bad/', id)).toThrow(InvalidS3UrlError);
    expect(() => reportLocation(cfg, 's3://arch/out/', '../x')).toThrow(InvalidRequestError);
  });
});

describe('ids', () => {
  const spec = parseJobSpec({ source: { bucket: 'arch', key: 'in/x.wav', etag: 'e' }, output: { bucket: 'arch', keyBase: 'out/x' } });
  it('the patterns match exactly the ids jobIdFor and newBatchId make', () => {
    expect(isJobId(jobIdFor(spec))).toBe(true);
    for (const d of [new Date(0), new Date('2024-02-29T23:59:59.999Z'), new Date()]) expect(isBatchId(newBatchId(d))).toBe(true);
  });
  it.each(['meta', 'events', 'id', 'wait', 'stalled-check', 'tx_', 'tx_nope', `tx_${'a'.repeat(39)}`, `tx_${'a'.repeat(41)}`, `tx_${'A'.repeat(40)}`, `tx_${'a'.repeat(40)}\n`, `x${jobIdFor(spec)}`, `${jobIdFor(spec)}:lock`])('job id %j refused', (id) => {
    expect(isJobId(id)).toBe(false);
    expect(() => assertJobId(id)).toThrow(InvalidRequestError);
  });
  it.each(['meta', 'b_', 'b_nope', 'b_20240101-000000_0a1b2c3', 'b_20240101-000000_0A1B2C3D', 'b_20240101-000000_0a1b2c3d:r', 'b_20240101000000_0a1b2c3d'])('batch id %j refused', (id) => {
    expect(isBatchId(id)).toBe(false);
    expect(() => assertBatchId(id)).toThrow(InvalidRequestError);
  });
});
