import { InvalidS3UrlError } from './errors';

export interface S3Location {
  bucket: string;
  /** Key or prefix; may be empty (the whole bucket). */
  key: string;
}

// S3 bucket naming rules (the subset that matters for validation): 3-63 chars, lowercase letters,
// digits, dots and hyphens, starting and ending with a letter or digit.
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Parse `s3://bucket/key/or/prefix`. Throws InvalidS3UrlError with a message naming the problem. */
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
  return { bucket, key };
}

export function formatS3Url(loc: S3Location): string {
  return `s3://${loc.bucket}/${loc.key}`;
}

/**
 * Where the outputs of one source object go: the output prefix plus the key relative to the listed
 * prefix's folder, like `aws s3 cp --recursive` (in/a/b.wav listed under in/ to out/ → out/a/b.wav).
 */
export function outputKeyBase(sourceKey: string, listedPrefix: string, outPrefix: string): string {
  const folder = listedPrefix.includes('/') ? listedPrefix.slice(0, listedPrefix.lastIndexOf('/') + 1) : '';
  const rel = sourceKey.startsWith(folder) ? sourceKey.slice(folder.length) : sourceKey;
  const out = outPrefix === '' || outPrefix.endsWith('/') ? outPrefix : `${outPrefix}/`;
  return out + rel;
}
