import { InvalidS3UrlError } from './errors';

export interface S3Location {
  bucket: string;
  /** Key or prefix; may be empty (the whole bucket). */
  key: string;
}

// S3 bucket naming rules (the subset that matters for validation): 3-63 chars, lowercase letters,
// digits, dots and hyphens, starting and ending with a letter or digit.
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

// C0 controls, DEL and C1 controls: never part of a key we accept (they hide in logs, and some
// servers and proxies strip or reinterpret them).
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

function decodeOnce(s: string): string {
  return s.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

function spelledProblem(key: string, prefix: boolean): string | null {
  if (CONTROL_RE.test(key)) return 'a control character';
  if (key.includes('\\')) return 'a backslash';
  const segments = key.split('/');
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    if (seg === '.' || seg === '..') return `a dot segment ${JSON.stringify(seg)}`;
    // A prefix may end with `/` (a folder); nowhere else may a segment be empty (`//`, a leading `/`).
    if (seg === '' && !(prefix && i === segments.length - 1 && i > 0)) return 'an empty path segment';
  }
  return null;
}

/**
 * Why `key` could address something other than what it spells, or null if it cannot. Object keys
 * are opaque to S3, but not to everything between us and it: an S3-compatible server or a proxy that
 * resolves `.`/`..` segments, merges `//` or maps `\` to `/` turns `s3://arch/../bad/x` into bucket
 * `bad`. So such keys are refused, not normalised: the location that is checked (allow-list,
 * output prefix) is the one that is used. The same rules apply to the key with its `%XX` escapes
 * decoded once (`%2e%2e`, `%2f%2f`, `%5c`, `%00`), for the layers that decode paths. A prefix may be
 * empty (the whole bucket) or end with `/`; an object key may do neither.
 */
export function unsafeKeyReason(key: string, opts: { prefix?: boolean } = {}): string | null {
  const prefix = opts.prefix ?? false;
  if (prefix && key === '') return null;
  const spelled = spelledProblem(key, prefix);
  if (spelled) return `key ${JSON.stringify(key)} holds ${spelled}`;
  const decoded = decodeOnce(key);
  const encoded = decoded !== key ? spelledProblem(decoded, prefix) : null;
  return encoded ? `key ${JSON.stringify(key)} holds ${encoded} (percent-encoded)` : null;
}

/**
 * Parse `s3://bucket/key/or/prefix`. Throws InvalidS3UrlError with a message naming the problem:
 * a bad bucket name, an over-long key, or a key `unsafeKeyReason` refuses (dot or empty segments,
 * backslashes, control characters, also percent-encoded). The result is taken as spelled: nothing
 * in it is left for S3 or anything on the way to normalise.
 */
export function parseS3Url(url: string): S3Location {
  if (typeof url !== 'string' || !url.startsWith('s3://')) {
    throw new InvalidS3UrlError(`not an S3 URL (expected s3://bucket/prefix): ${JSON.stringify(url)}`);
  }
  const rest = url.slice('s3://'.length);
  const slash = rest.indexOf('/');
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  const key = slash === -1 ? '' : rest.slice(slash + 1);
  if (!BUCKET_RE.test(bucket) || bucket.includes('..')) {
    throw new InvalidS3UrlError(`invalid bucket name ${JSON.stringify(bucket)} in ${JSON.stringify(url)}`);
  }
  if (Buffer.byteLength(key, 'utf8') > 1024) {
    throw new InvalidS3UrlError(`key longer than 1024 bytes in ${JSON.stringify(url)}`);
  }
  const unsafe = unsafeKeyReason(key, { prefix: true });
  if (unsafe) throw new InvalidS3UrlError(`${unsafe} in ${JSON.stringify(url)}`);
  return { bucket, key };
}

export function formatS3Url(loc: S3Location): string {
  return `s3://${loc.bucket}/${loc.key}`;
}

/** A key as a folder prefix: empty stays empty (the whole bucket), anything else ends with `/`. */
export function asPrefix(key: string): string {
  return key === '' || key.endsWith('/') ? key : `${key}/`;
}

/**
 * Where the outputs of one source object go: the output prefix plus the key relative to the listed
 * prefix's folder, like `aws s3 cp --recursive` (in/a/b.wav listed under in/ to out/ → out/a/b.wav).
 * Proven to stay under the output prefix: the relative part must be a plain key (no dot or empty
 * segments, no backslash or control character, see `unsafeKeyReason`), else InvalidS3UrlError is
 * thrown here rather than a job being made that writes elsewhere (a listed key `in/../../x.wav`
 * would otherwise put its outputs beside the prefix, or in another bucket on a server that
 * resolves the dots).
 */
export function outputKeyBase(sourceKey: string, listedPrefix: string, outPrefix: string): string {
  const folder = listedPrefix.includes('/') ? listedPrefix.slice(0, listedPrefix.lastIndexOf('/') + 1) : '';
  const rel = sourceKey.startsWith(folder) ? sourceKey.slice(folder.length) : sourceKey;
  const out = asPrefix(outPrefix);
  const unsafe = unsafeKeyReason(out, { prefix: true }) ?? unsafeKeyReason(rel);
  const key = out + rel;
  if (unsafe || !key.startsWith(out) || key.length === out.length) {
    throw new InvalidS3UrlError(`the outputs of ${JSON.stringify(sourceKey)} would not stay under the output prefix ${JSON.stringify(out)}: ${unsafe ?? 'empty relative key'}`);
  }
  return key;
}
