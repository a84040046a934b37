import {
  BucketNotAllowedError,
  CATALOGUE,
  checkCombination,
  isProviderName,
  PROVIDERS,
  UnknownProviderError,
  normaliseEtag,
  outputKeyBase,
  parseJobSpec,
  parseS3Url,
  UnsupportedCombinationError,
  type JobSpec,
  type JobSpecInput,
  type ObjectInfo,
  type Storage,
} from '@scribe-fleet/core';
import type { FleetQueues } from '@scribe-fleet/core/adapters/fleet-queues';

export interface EnqueuePrefixRequest {
  /** `s3://bucket/prefix` to transcribe. */
  source: string;
  /** `s3://bucket/prefix/` where outputs go. */
  out: string;
  provider?: string;
  model?: string;
  mode?: string;
  options?: JobSpecInput['options'];
  account?: string;
  formats?: JobSpecInput['output']['formats'];
  batchId?: string;
}

export interface EnqueueProgress {
  listed: number;
  skipped: number;
  added: number;
  duplicates: number;
}

export interface EnqueueDeps {
  storage: Storage;
  fleet: FleetQueues;
  pageSize?: number;
  allowedBuckets?: string[];
  onProgress?: (p: EnqueueProgress) => void;
}

/** Keys that are never audio inputs: folder markers and anything under the output prefix. */
function skipKey(obj: ObjectInfo, outBucket: string, outPrefix: string): boolean {
  if (obj.key.endsWith('/')) return true;
  return obj.bucket === outBucket && outPrefix !== '' && obj.key.startsWith(outPrefix);
}

export function specForObject(req: EnqueuePrefixRequest, obj: ObjectInfo, listedPrefix: string, out: { bucket: string; key: string }): JobSpec {
  const input: JobSpecInput = {
    source: { bucket: obj.bucket, key: obj.key, etag: normaliseEtag(obj.etag), size: obj.size, ...(obj.versionId ? { versionId: obj.versionId } : {}) },
    output: { bucket: out.bucket, keyBase: outputKeyBase(obj.key, listedPrefix, out.key), ...(req.formats ? { formats: req.formats } : {}) },
    ...(req.provider ? { provider: req.provider as JobSpecInput['provider'] } : {}),
    ...(req.model ? { model: req.model } : {}),
    ...(req.mode ? { mode: req.mode as JobSpecInput['mode'] } : {}),
    ...(req.options ? { options: req.options } : {}),
    ...(req.account ? { account: req.account } : {}),
    ...(req.batchId ? { batchId: req.batchId } : {}),
  };
  return parseJobSpec(input);
}

/** Validate the request before listing anything, so a bad request enqueues nothing. */
export function validateEnqueue(req: EnqueuePrefixRequest, allowedBuckets: string[] = []) {
  const src = parseS3Url(req.source);
  const out = parseS3Url(req.out);
  for (const b of [src.bucket, out.bucket]) {
    if (allowedBuckets.length && !allowedBuckets.includes(b)) {
      throw new BucketNotAllowedError(`bucket ${b} is not in S3_ALLOWED_BUCKETS (${allowedBuckets.join(', ')})`);
    }
  }
  const provider = req.provider ?? 'local';
  if (!isProviderName(provider)) throw new UnknownProviderError(`unknown provider ${JSON.stringify(provider)} (known: ${PROVIDERS.join(', ')})`);
  const reason = checkCombination(provider, req.model ?? CATALOGUE[provider].defaultModel, req.mode ?? 'batch');
  if (reason) throw new UnsupportedCombinationError(reason);
  return { src, out };
}

/**
 * Enqueue one job per object under a prefix. Lists with ListObjectsV2 page by page (any number of
 * keys) and adds each page with one `addBulk`. Job ids are deterministic, so enqueuing the same
 * prefix again adds nothing new; `duplicates` counts the ids that already existed.
 */
export async function enqueuePrefix(req: EnqueuePrefixRequest, deps: EnqueueDeps): Promise<EnqueueProgress & { jobIds: string[] }> {
  const { src, out } = validateEnqueue(req, deps.allowedBuckets);
  const progress: EnqueueProgress = { listed: 0, skipped: 0, added: 0, duplicates: 0 };
  const jobIds: string[] = [];
  for await (const page of deps.storage.listPages(src.bucket, src.key, { pageSize: Math.min(1000, deps.pageSize ?? 500) })) {
    progress.listed += page.length;
    const specs: JobSpec[] = [];
    for (const obj of page) {
      if (skipKey(obj, out.bucket, out.key)) progress.skipped += 1;
      else specs.push(specForObject(req, obj, src.key, out));
    }
    if (specs.length === 0) continue;
    const res = await deps.fleet.add(specs);
    progress.duplicates += res.duplicates;
    progress.added += res.added;
    jobIds.push(...res.ids);
    deps.onProgress?.({ ...progress });
  }
  return { ...progress, jobIds };
}
