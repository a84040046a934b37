/**
 * Every check and limit of a request, in one module (pg-boss's "attorney"): what a create-batch
 * request must say, how a file of it becomes a job spec, when a manifest is refused, and how far a
 * listing may page. The use cases call these; the front ends only map the errors they throw (codes
 * → CLI exit codes, HTTP statuses) and never repeat a rule.
 */
import { checkCombination, isProviderName, PROVIDERS, CATALOGUE } from '../domain/catalogue';
import type { Config } from '../domain/config';
import { BucketNotAllowedError, InvalidManifestError, InvalidRequestError, UnknownProviderError, UnsupportedCombinationError } from '../domain/errors';
import { normaliseEtag, parseJobSpec, type JobSpec, type JobSpecInput } from '../domain/job-spec';
import type { ParsedManifest } from '../domain/manifest';
import { formatS3Url, outputKeyBase, parseS3Url, type S3Location } from '../domain/s3-url';
import type { ObjectInfo } from '../ports/storage';

export interface CreateBatchRequest {
  /** `s3://bucket/prefix` to transcribe (or give `manifest`). */
  source?: string;
  /** A manifest of files (JSONL or CSV), each optionally with its own options. */
  manifest?: { text: string; format: 'jsonl' | 'csv'; defaultBucket?: string };
  /** `s3://bucket/prefix/` for outputs (and the batch report). */
  out: string;
  provider?: string;
  model?: string;
  mode?: string;
  options?: JobSpecInput['options'];
  account?: string;
  formats?: JobSpecInput['output']['formats'];
  /** BullMQ priority of every job of the batch: 1 (highest) … 2 097 152; omitted = normal FIFO. */
  priority?: number;
  /** Transcribe again even where outputs exist (and re-run finished jobs). */
  force?: boolean;
  webhookUrl?: string;
}

/** The lowest priority a job may have (BullMQ's limit); 1 is the highest. */
export const MAX_PRIORITY = 2_097_152;
/** Objects listed per page of a prefix, at most (S3's own page limit; ENQUEUE_PAGE_SIZE may ask for fewer). */
export const MAX_LIST_PAGE = 1000;
/** Files of a manifest enqueued per page. */
export const MANIFEST_PAGE = 500;
/** Bad lines of a refused manifest named in its error message, and kept in its details. */
const MANIFEST_ERRORS_SHOWN = 20;
const MANIFEST_ERRORS_KEPT = 1000;

/** Check everything about the request that can be checked before touching storage. */
export function validateCreateBatch(config: Pick<Config, 'S3_ALLOWED_BUCKETS'>, req: CreateBatchRequest): { out: S3Location; source?: S3Location } {
  if (!req.source === !req.manifest) throw new InvalidRequestError('give exactly one of `source` (s3://bucket/prefix) or `manifest`');
  const out = parseS3Url(req.out);
  const source = req.source ? parseS3Url(req.source) : undefined;
  const allowed = config.S3_ALLOWED_BUCKETS;
  for (const b of [out.bucket, source?.bucket, req.manifest?.defaultBucket]) {
    if (b && allowed.length && !allowed.includes(b)) throw new BucketNotAllowedError(`bucket ${b} is not in S3_ALLOWED_BUCKETS (${allowed.join(', ')})`);
  }
  const provider = req.provider ?? 'local';
  if (!isProviderName(provider)) throw new UnknownProviderError(`unknown provider ${JSON.stringify(provider)} (known: ${PROVIDERS.join(', ')})`);
  const reason = checkCombination(provider, req.model ?? CATALOGUE[provider].defaultModel, req.mode ?? 'batch');
  if (reason) throw new UnsupportedCombinationError(reason);
  if (req.priority !== undefined && !(Number.isInteger(req.priority) && req.priority >= 1 && req.priority <= MAX_PRIORITY)) {
    throw new InvalidRequestError('priority must be an integer from 1 (highest) to 2097152');
  }
  if (req.webhookUrl !== undefined && !/^https?:\/\//.test(req.webhookUrl)) throw new InvalidRequestError('webhookUrl must be an http(s) URL');
  // Options, formats and account are checked now on a stand-in file, so no page can fail on them later.
  parseJobSpec({
    source: { bucket: out.bucket, key: 'validate', etag: 'validate' },
    output: { bucket: out.bucket, keyBase: 'validate', ...(req.formats ? { formats: req.formats } : {}) },
    options: req.options ?? {},
    provider,
    ...(req.model ? { model: req.model } : {}),
    ...(req.mode ? { mode: req.mode } : {}),
    ...(req.account ? { account: req.account } : {}),
  });
  return source ? { out, source } : { out };
}

/** The job spec of one file of a (validated) request: the request's options, then the file's own. */
export function specFor(req: CreateBatchRequest, obj: ObjectInfo, listedPrefix: string, out: S3Location, batchId: string, options?: JobSpecInput['options']): JobSpec {
  const input: JobSpecInput = {
    source: { bucket: obj.bucket, key: obj.key, etag: normaliseEtag(obj.etag), size: obj.size, ...(obj.versionId ? { versionId: obj.versionId } : {}) },
    output: { bucket: out.bucket, keyBase: outputKeyBase(obj.key, listedPrefix, out.key), ...(req.formats ? { formats: req.formats } : {}) },
    options: { ...(req.options ?? {}), ...(options ?? {}) },
    batchId,
    ...(req.force ? { force: true } : {}),
    ...(req.provider ? { provider: req.provider as JobSpecInput['provider'] } : {}),
    ...(req.model ? { model: req.model } : {}),
    ...(req.mode ? { mode: req.mode as JobSpecInput['mode'] } : {}),
    ...(req.account ? { account: req.account } : {}),
  };
  return parseJobSpec(input);
}

/** A listed key that is not an input: a folder marker, or a key under the output prefix. */
export function isIgnoredKey(obj: Pick<ObjectInfo, 'bucket' | 'key'>, out: S3Location): boolean {
  return obj.key.endsWith('/') || (obj.bucket === out.bucket && out.key !== '' && obj.key.startsWith(out.key));
}

/** A manifest must list something (a manifest of only bad lines is refused with them, below). */
export function assertManifestLists(parsed: ParsedManifest): void {
  if (parsed.entries.length === 0 && parsed.errors.length === 0) throw new InvalidManifestError('the manifest lists no files');
}

/**
 * A manifest is taken whole or refused whole: any bad line, or an entry whose object was not found
 * (`heads[i]` null), refuses it, naming the lines.
 */
export function assertManifestAccepted(parsed: ParsedManifest, heads: Array<ObjectInfo | null>): void {
  heads.forEach((h, i) => {
    if (!h) parsed.errors.push({ line: parsed.entries[i]!.line, message: `object ${formatS3Url(parsed.entries[i]!.location)} not found` });
  });
  if (parsed.errors.length) {
    parsed.errors.sort((a, b) => a.line - b.line);
    const shown = parsed.errors.slice(0, MANIFEST_ERRORS_SHOWN).map((e) => `line ${e.line}: ${e.message}`).join('; ');
    throw new InvalidManifestError(`manifest refused, nothing enqueued: ${parsed.errors.length} bad line(s): ${shown}${parsed.errors.length > MANIFEST_ERRORS_SHOWN ? '; …' : ''}`, {
      details: { errors: parsed.errors.slice(0, MANIFEST_ERRORS_KEPT) },
    });
  }
}

/** A page of a batch's jobs: from 0, 100 by default, at most 500. */
export function batchJobsPaging(opts: { offset?: number; limit?: number }): { offset: number; limit: number } {
  return { offset: opts.offset ?? 0, limit: Math.min(500, opts.limit ?? 100) };
}

/** A page of a batch's webhook deliveries: from 0, 100 by default, 1 to 500. */
export function deliveriesPaging(opts: { offset?: number; limit?: number }): { offset: number; limit: number } {
  return { offset: Math.max(0, opts.offset ?? 0), limit: Math.min(500, Math.max(1, opts.limit ?? 100)) };
}
