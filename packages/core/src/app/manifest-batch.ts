/**
 * A batch from a manifest, in two reads of it: a manifest is taken whole or refused whole (any bad
 * line, or any object that does not exist, and nothing is enqueued), so every line must be seen
 * before the first job is added, yet the manifest is never held parsed.
 *
 * 1. `checkManifest`: read it line by line (its limits checked as it arrives, each entry's bucket
 *    and key checked as it is parsed), keeping per entry only its location (for the lookup) and,
 *    after the lookup, its ETag, size and version id; then look every object up (object-lookup.ts:
 *    listing where keys are dense, HEAD where sparse). Any bad line refuses it here.
 * 2. `manifestPages`: read it again and yield pages of MANIFEST_PAGE files with what the lookup
 *    found, so the enqueue path holds one page at a time. Each entry is checked against a hash of
 *    what the first read saw: a file that changed in between stops the batch at that page.
 *
 * What is kept between the reads is ~20 bytes plus the ETag per entry (not the entries, options or
 * lines); the first read also holds each key once (duplicate check and lookup) until it is done.
 */
import { InvalidManifestError } from '../domain/errors';
import type { JobSpecInput } from '../domain/job-spec';
import { manifestBytes, manifestChunks, readManifest, type ManifestInput } from '../domain/manifest';
import type { S3Location } from '../domain/s3-url';
import type { ObjectInfo } from '../ports/storage';
import type { BatchDeps } from './deps';
import { lookupObjects, type LookupStats } from './object-lookup';
import { assertManifestAccepted, assertManifestEntry, assertManifestLists, assertManifestOptions, MANIFEST_PAGE, ManifestErrors, manifestLimits, type Routing } from './validate';

/** What the first read of a manifest established: per entry (in line order), what its object is. */
export interface CheckedManifest {
  entries: number;
  etags: string[];
  sizes: Float64Array;
  versionIds: Map<number, string>;
  /** A hash of each entry's bucket and key, to recognise it on the second read. */
  hashes: Uint32Array;
  lookup: LookupStats;
}

export type ManifestPage = Array<{ obj: ObjectInfo; listedPrefix: string; options?: JobSpecInput['options'] }>;

/** Keys the lookup confirms missing with a HEAD (beyond these, the manifest is refused on the listing's word). */
const CONFIRM_MISSING = 1000;

/** FNV-1a over bucket, a separator and key (32 bits: a changed line is caught with odds 1 − 2⁻³²). */
function locationHash(loc: S3Location): number {
  let h = 0x811c9dc5;
  const mix = (s: string) => {
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  };
  mix(loc.bucket);
  h = Math.imul(h ^ 0x2f, 0x01000193);
  mix(loc.key);
  return h >>> 0;
}

/** `a`, or a copy twice as long when index `n` does not fit. */
function grow(a: Uint32Array, n: number): Uint32Array {
  if (n < a.length) return a;
  const b = new Uint32Array(Math.max(1024, a.length * 2));
  b.set(a);
  return b;
}

/**
 * The first read: limits, every line, every object. Throws MANIFEST_TOO_LARGE, BUCKET_NOT_ALLOWED /
 * INVALID_S3_URL (a line's location, assertManifestEntry), UNSUPPORTED_OPTION (a line's options
 * that the batch's provider, model and mode do not take) or INVALID_MANIFEST (bad or missing
 * lines, all named) before anything is created.
 */
export async function checkManifest(deps: Pick<BatchDeps, 'config' | 'storage'>, manifest: ManifestInput, routing: Routing): Promise<CheckedManifest> {
  const limit = manifestLimits(deps.config, manifestBytes(manifest));
  const errors = new ManifestErrors();
  const locations: S3Location[] = [];
  const lines: number[] = [];
  let hashes: Uint32Array = new Uint32Array(1024);
  const opts = { dedupe: true, limit, ...(manifest.defaultBucket ? { defaultBucket: manifest.defaultBucket } : {}) };
  for await (const item of readManifest(manifestChunks(manifest), manifest.format, opts)) {
    if ('error' in item) {
      errors.add(item.line, item.error);
      continue;
    }
    // Each line's bucket and key, before any of them is read (a line may name any bucket).
    assertManifestEntry(deps.config, item.entry);
    assertManifestOptions(routing, item.entry);
    hashes = grow(hashes, locations.length);
    hashes[locations.length] = locationHash(item.entry.location);
    locations.push(item.entry.location);
    lines.push(item.line);
  }
  assertManifestLists({ entries: locations.length, errors: errors.count });

  const n = locations.length;
  const etags = new Array<string>(n).fill('');
  const sizes = new Float64Array(n);
  const versionIds = new Map<number, string>();
  const lookup = await lookupObjects(
    deps.storage,
    locations,
    (i, info) => {
      if (!info) return errors.missing(lines[i]!, locations[i]!);
      etags[i] = info.etag;
      sizes[i] = info.size;
      if (info.versionId) versionIds.set(i, info.versionId);
    },
    { exact: true, confirmMissingUpTo: CONFIRM_MISSING },
  );
  assertManifestAccepted(errors);
  return { entries: n, etags, sizes, versionIds, hashes: hashes.subarray(0, n), lookup };
}

/**
 * The second read: the checked manifest's files, page by page, as the enqueue path takes them
 * (each entry's outputs go under `out` by its name, relative to its own folder).
 */
export async function* manifestPages(manifest: ManifestInput, checked: CheckedManifest, config: Parameters<typeof manifestLimits>[0], pageSize = MANIFEST_PAGE): AsyncGenerator<ManifestPage> {
  const changed = (what: string) => new InvalidManifestError(`the manifest changed while it was being read (${what}): the batch holds the files enqueued before it; enqueue it again to add the rest`);
  const opts = { limit: manifestLimits(config), ...(manifest.defaultBucket ? { defaultBucket: manifest.defaultBucket } : {}) };
  let i = 0;
  let page: ManifestPage = [];
  for await (const item of readManifest(manifestChunks(manifest), manifest.format, opts)) {
    if ('error' in item) throw changed(`line ${item.line}: ${item.error}`);
    const loc = item.entry.location;
    if (i >= checked.entries || locationHash(loc) !== checked.hashes[i]) throw changed(`line ${item.line}`);
    const versionId = checked.versionIds.get(i);
    page.push({
      obj: { bucket: loc.bucket, key: loc.key, etag: checked.etags[i]!, size: checked.sizes[i]!, ...(versionId ? { versionId } : {}) },
      listedPrefix: loc.key.slice(0, loc.key.lastIndexOf('/') + 1),
      ...(item.entry.options ? { options: item.entry.options } : {}),
    });
    i++;
    if (page.length >= pageSize) {
      yield page;
      page = [];
    }
  }
  if (i !== checked.entries) throw changed(`${i} files instead of ${checked.entries}`);
  if (page.length) yield page;
}
