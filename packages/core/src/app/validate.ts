/**
 * Every check and limit of a request, in one module (pg-boss's "attorney"): what a create-batch
 * request must say, how a file of it becomes a job spec, when a manifest is refused, and how far a
 * listing may page; which options its provider, model and mode take (domain/catalogue.ts decides;
 * the request's, each manifest line's, and again on the worker for each spec); which buckets a batch
 * may touch (S3_ALLOWED_BUCKETS: the prefix source, every manifest line, the output and the report
 * under it, and again on the worker for each spec), and what an id from a client must look like. The use cases call these; the front ends only map the
 * errors they throw (codes → CLI exit codes, HTTP statuses) and never repeat a rule.
 */
import { checkCombination, checkOptions, isProviderName, PROVIDERS, CATALOGUE, type Mode, type ProviderName } from '../domain/catalogue';
import type { Config } from '../domain/config';
import { isBatchId } from '../domain/batch';
import { isPlanId } from '../domain/plan';
import type { PlanLink } from '../domain/plan-progress';
import {
  BucketNotAllowedError,
  InvalidManifestError,
  ManifestTooLargeError,
  InvalidRequestError,
  InvalidS3UrlError,
  UnknownProviderError,
  UnsupportedCombinationError,
  UnsupportedOptionError,
} from '../domain/errors';
import { isJobId, normaliseEtag, parseJobSpec, StoredFeedRequestSchema, type JobSpec, type JobSpecInput } from '../domain/job-spec';
import type { ManifestEntry, ManifestError, ManifestInput } from '../domain/manifest';
import { asPrefix, formatS3Url, outputKeyBase, parseS3Url, unsafeKeyReason, type S3Location } from '../domain/s3-url';
import type { ObjectInfo } from '../ports/storage';
import type { Plan } from './plan-batch';
import { daysBetween, dayMinus, isUsageDay, type UsageBy, type UsageFilter } from '../domain/usage';

export interface CreateBatchRequest {
  /** `s3://bucket/prefix` to transcribe (or give `manifest`). */
  source?: string;
  /**
   * A manifest of files (JSONL or CSV), each optionally with its own options: inline `text`, or
   * `open` (a fresh stream of its bytes per call, read twice) with its size in `bytes`.
   */
  manifest?: ManifestInput;
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
  /** The plan the batch runs (`scribe enqueue --plan`: app/plans.ts planRequest), kept on its record and shown beside its progress. */
  plan?: PlanLink;
  /** Budget: no new session starts once the batch's audio would pass this many hours (domain/budget.ts). */
  maxAudioHours?: number;
  /** Budget: … or its estimated cost (the price table) would pass this many US dollars. */
  maxCost?: number;
}

/** The largest budget figure accepted (hours or dollars): beyond it, leave the limit out. */
export const MAX_BUDGET_FIGURE = 1e9;

/** A budget figure (`maxAudioHours`, `maxCost`) from a request: a finite positive number. */
export function assertBudgetFigure(name: string, v: unknown): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > MAX_BUDGET_FIGURE) throw new InvalidRequestError(`${name} must be a number above 0 and at most ${MAX_BUDGET_FIGURE}`);
}

/** A resume request (`scribe resume`, POST /v1/batches/{id}/resume): new limits, or none. */
export function validateResume(req: { maxAudioHours?: unknown; maxCost?: unknown; unlimited?: unknown }): { maxAudioHours?: number; maxCost?: number; unlimited?: boolean } {
  assertBudgetFigure('maxAudioHours', req.maxAudioHours);
  assertBudgetFigure('maxCost', req.maxCost);
  if (req.unlimited !== undefined && typeof req.unlimited !== 'boolean') throw new InvalidRequestError('unlimited must be true or false');
  if (req.unlimited && (req.maxAudioHours !== undefined || req.maxCost !== undefined)) throw new InvalidRequestError('give new limits or unlimited, not both');
  return {
    ...(req.maxAudioHours !== undefined ? { maxAudioHours: req.maxAudioHours as number } : {}),
    ...(req.maxCost !== undefined ? { maxCost: req.maxCost as number } : {}),
    ...(req.unlimited ? { unlimited: true } : {}),
  };
}

/** The lowest priority a job may have (BullMQ's limit); 1 is the highest. */
export const MAX_PRIORITY = 2_097_152;
/** Objects listed per page of a prefix, at most (S3's own page limit; ENQUEUE_PAGE_SIZE may ask for fewer). */
export const MAX_LIST_PAGE = 1000;
/** Files of a manifest enqueued per page (as a prefix's: the batch books and `addBulk` once per page). */
export const MANIFEST_PAGE = 1000;
/** Bad lines of a refused manifest named in its error message, and kept in its details. */
const MANIFEST_ERRORS_SHOWN = 20;
const MANIFEST_ERRORS_KEPT = 1000;

/**
 * The one allow-list check: `bucket` must be in S3_ALLOWED_BUCKETS, unless the list is empty (any
 * bucket). Every bucket a batch touches goes through here (see the callers below).
 */
export function assertBucketAllowed(allowed: readonly string[], bucket: string, context = '', details?: Record<string, unknown>): void {
  if (allowed.length && !allowed.includes(bucket)) {
    throw new BucketNotAllowedError(`${context}bucket ${bucket} is not in S3_ALLOWED_BUCKETS (${allowed.join(', ')})`, details ? { details } : {});
  }
}

/** Where a request's jobs run: its provider, model and mode with the defaults applied. */
export interface Routing {
  provider: ProviderName;
  model: string;
  mode: Mode;
}

/**
 * The one per-provider options check: every option must be one the provider, model and mode take,
 * with a value of its type (domain/catalogue.ts checkOptions), else UNSUPPORTED_OPTION naming it.
 */
export function assertOptions(routing: Routing, options: JobSpecInput['options'], context = '', details?: Record<string, unknown>): void {
  const refused = options ? checkOptions(routing.provider, routing.model, routing.mode, options) : null;
  if (refused) throw new UnsupportedOptionError(`${context}${refused.reason}`, { details: { option: refused.option, ...routing, ...details } });
}

/** Check everything about the request that can be checked before touching storage. */
export function validateCreateBatch(config: Pick<Config, 'S3_ALLOWED_BUCKETS'>, req: CreateBatchRequest): { out: S3Location; source?: S3Location; routing: Routing } {
  if (!req.source === !req.manifest) throw new InvalidRequestError('give exactly one of `source` (s3://bucket/prefix) or `manifest`');
  const out = parseS3Url(req.out);
  const source = req.source ? parseS3Url(req.source) : undefined;
  // The output bucket is also the report's (finalizeBatch writes under `out`, see reportLocation).
  for (const b of [out.bucket, source?.bucket, req.manifest?.defaultBucket]) if (b) assertBucketAllowed(config.S3_ALLOWED_BUCKETS, b);
  const provider = req.provider ?? 'local';
  if (!isProviderName(provider)) throw new UnknownProviderError(`unknown provider ${JSON.stringify(provider)} (known: ${PROVIDERS.join(', ')})`);
  const reason = checkCombination(provider, req.model ?? CATALOGUE[provider].defaultModel, req.mode ?? 'batch');
  if (reason) throw new UnsupportedCombinationError(reason);
  if (req.priority !== undefined && !(Number.isInteger(req.priority) && req.priority >= 1 && req.priority <= MAX_PRIORITY)) {
    throw new InvalidRequestError('priority must be an integer from 1 (highest) to 2097152');
  }
  if (req.webhookUrl !== undefined && !/^https?:\/\//.test(req.webhookUrl)) throw new InvalidRequestError('webhookUrl must be an http(s) URL');
  assertBudgetFigure('maxAudioHours', req.maxAudioHours);
  assertBudgetFigure('maxCost', req.maxCost);
  if (req.plan !== undefined) assertPlanLink(req.plan);
  // Options, formats and account are checked now on a stand-in file, so no page can fail on them later.
  const stand = parseJobSpec({
    source: { bucket: out.bucket, key: 'validate', etag: 'validate' },
    output: { bucket: out.bucket, keyBase: 'validate', ...(req.formats ? { formats: req.formats } : {}) },
    options: req.options ?? {},
    provider,
    ...(req.model ? { model: req.model } : {}),
    ...(req.mode ? { mode: req.mode } : {}),
    ...(req.account ? { account: req.account } : {}),
  });
  // Then what the provider makes of the options (a spec's options are the request's plus a manifest
  // line's own: those are checked per line, assertManifestOptions).
  const routing: Routing = { provider: stand.provider, model: stand.model, mode: stand.mode };
  assertOptions(routing, stand.options);
  return source ? { out, source, routing } : { out, routing };
}

/** What a drip-fed batch's record keeps of its request: the request without a manifest, plan link or budget (the record and the budget book keep those). */
export function storedFeedRequest(req: CreateBatchRequest): string {
  const { manifest: _manifest, plan: _plan, maxAudioHours: _h, maxCost: _c, ...rest } = req;
  return JSON.stringify(rest);
}

/**
 * A drip-fed batch's stored request read back from Redis: parsed, and validated again as a request
 * (allow-listed buckets, provider, options) against this process's config, before a page is listed.
 */
export function parseFeedRequest(config: Pick<Config, 'S3_ALLOWED_BUCKETS'>, stored: string): { req: CreateBatchRequest; out: S3Location; source: S3Location } {
  let json: unknown;
  try {
    json = JSON.parse(stored);
  } catch {
    throw new InvalidRequestError('the batch record holds no valid request (not JSON)');
  }
  const parsed = StoredFeedRequestSchema.safeParse(json);
  if (!parsed.success) throw new InvalidRequestError(`the batch record holds no valid request: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const req = Object.fromEntries(Object.entries(parsed.data).filter(([, v]) => v !== undefined)) as unknown as CreateBatchRequest;
  const { out, source } = validateCreateBatch(config, req);
  if (!source) throw new InvalidRequestError('the batch record holds no source');
  return { req, out, source };
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

/**
 * One file of a manifest, before anything is read from storage: its bucket must be allowed (each
 * line may name its own bucket, so checking the request's buckets is not enough) and its key a
 * plain object key (bare keys resolved against `defaultBucket` never went through parseS3Url).
 * The manifest path calls this per entry; the first refusal refuses the whole manifest.
 */
export function assertManifestEntry(config: Pick<Config, 'S3_ALLOWED_BUCKETS'>, entry: Pick<ManifestEntry, 'line' | 'location'>): void {
  assertBucketAllowed(config.S3_ALLOWED_BUCKETS, entry.location.bucket, `manifest line ${entry.line}: `, { line: entry.line });
  const unsafe = unsafeKeyReason(entry.location.key);
  if (unsafe) throw new InvalidS3UrlError(`manifest line ${entry.line}: ${unsafe}`, { details: { line: entry.line } });
}

/**
 * A manifest line's own options (added to the request's): ones the batch's provider, model and mode
 * take, else UNSUPPORTED_OPTION naming the line; the first refusal refuses the whole manifest.
 */
export function assertManifestOptions(routing: Routing, entry: Pick<ManifestEntry, 'line' | 'options'>): void {
  assertOptions(routing, entry.options, `manifest line ${entry.line}: `, { line: entry.line });
}

/**
 * A spec read back from Redis: its options against the catalogue again (another producer, an older
 * version or a hand-written job may have put options there that its provider does not take).
 */
export function assertSpecOptions(spec: Pick<JobSpec, 'provider' | 'model' | 'mode' | 'options'>): void {
  assertOptions({ provider: spec.provider, model: spec.model, mode: spec.mode }, spec.options);
}

/**
 * What a worker checks of a spec before any storage call: a spec in Redis is not proof that its
 * producer was allowed to make it (another producer, an older config, a hand-written job). Both
 * buckets against the worker's own S3_ALLOWED_BUCKETS, and both keys against the S3 URL rules (the
 * output key base must not climb out of its prefix).
 */
export function assertSpecAllowed(allowed: readonly string[], spec: Pick<JobSpec, 'source' | 'output'>): void {
  assertBucketAllowed(allowed, spec.source.bucket, 'source ');
  assertBucketAllowed(allowed, spec.output.bucket, 'output ');
  for (const [what, key] of [['source', spec.source.key], ['output', spec.output.keyBase]] as const) {
    const unsafe = unsafeKeyReason(key);
    if (unsafe) throw new InvalidS3UrlError(`${what} ${unsafe}`);
  }
}

/**
 * Where a batch's report goes: `<out>_reports/<batchId>` (the caller adds `.jsonl`,
 * `.summary.json`), in the output bucket, checked against the allow-list of whoever writes it (the
 * batch record is read back from Redis, like a spec).
 */
export function reportLocation(config: Pick<Config, 'S3_ALLOWED_BUCKETS'>, batchOut: string, batchId: string): { bucket: string; base: string } {
  const out = parseS3Url(batchOut);
  assertBucketAllowed(config.S3_ALLOWED_BUCKETS, out.bucket, 'report ');
  assertBatchId(batchId);
  return { bucket: out.bucket, base: `${asPrefix(out.key)}_reports/${batchId}` };
}

/** An id shown back in an error message: JSON, and cut short (it came from a client). */
function shownId(id: unknown): string {
  const s = typeof id === 'string' ? id : String(id);
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}

/** A job id from a client, before it reaches the queue: exactly the shape `jobIdFor` makes (400 INVALID_REQUEST otherwise). */
export function assertJobId(id: unknown): asserts id is string {
  if (!isJobId(id)) throw new InvalidRequestError(`not a job id: ${shownId(id)} (expected tx_ and 40 hex digits)`);
}

/** A batch id from a client: exactly the shape `newBatchId` makes (400 INVALID_REQUEST otherwise). */
export function assertBatchId(id: unknown): asserts id is string {
  if (!isBatchId(id)) throw new InvalidRequestError(`not a batch id: ${shownId(id)} (expected b_<yyyymmdd>-<hhmmss>_<8 hex>)`);
}

/** A plan id from a client: exactly the shape `newPlanId` makes (400 INVALID_REQUEST otherwise). */
export function assertPlanId(id: unknown): asserts id is string {
  if (!isPlanId(id)) throw new InvalidRequestError(`not a plan id: ${shownId(id)} (expected plan_ and 16 hex digits)`);
}

/**
 * A create request's plan link: `{id, choice}` and nothing else, a plan id (assertPlanId) and a
 * choice from 1 to MAX_PLAN_CHOICES. Whether the plan still exists is not checked: a plan is kept
 * PLAN_TTL_SECONDS, a batch may outlive it (the comparison is then not shown).
 */
export function assertPlanLink(link: unknown): asserts link is PlanLink {
  if (link === null || typeof link !== 'object' || Array.isArray(link)) throw new InvalidRequestError('plan must be {id, choice}');
  for (const k of Object.keys(link)) if (k !== 'id' && k !== 'choice') throw new InvalidRequestError(`plan: unknown field ${shownId(k)}`);
  const { id, choice } = link as Record<string, unknown>;
  assertPlanId(id);
  if (!(typeof choice === 'number' && Number.isInteger(choice) && choice >= 1 && choice <= MAX_PLAN_CHOICES)) throw new InvalidRequestError(`plan.choice must be an integer from 1 to ${MAX_PLAN_CHOICES}`);
}

/**
 * A manifest's size limits, checked before and while it is read (before any storage request):
 * over MANIFEST_MAX_BYTES (when its size is known up front, at once) or MANIFEST_MAX_LINES lines
 * (blank and comment lines count) it is refused with MANIFEST_TOO_LARGE. Returns the check the
 * reader calls as bytes and lines arrive.
 */
export function manifestLimits(config: Pick<Config, 'MANIFEST_MAX_BYTES' | 'MANIFEST_MAX_LINES'>, knownBytes?: number): (bytes: number, lines: number) => void {
  const maxBytes = config.MANIFEST_MAX_BYTES;
  const maxLines = config.MANIFEST_MAX_LINES;
  const check = (bytes: number, lines: number) => {
    if (bytes > maxBytes) {
      throw new ManifestTooLargeError(`manifest refused, nothing enqueued: ${knownBytes ?? `more than ${maxBytes}`} bytes, over MANIFEST_MAX_BYTES (${maxBytes}); split it into several batches`, {
        details: { limit: 'MANIFEST_MAX_BYTES', max: maxBytes },
      });
    }
    if (lines > maxLines) {
      throw new ManifestTooLargeError(`manifest refused, nothing enqueued: more than ${maxLines} lines, over MANIFEST_MAX_LINES (${maxLines}); split it into several batches`, {
        details: { limit: 'MANIFEST_MAX_LINES', max: maxLines },
      });
    }
  };
  if (knownBytes !== undefined) check(knownBytes, 0);
  return check;
}

/** A manifest must list something (a manifest of only bad lines is refused with them, below). */
export function assertManifestLists(counts: { entries: number; errors: number }): void {
  if (counts.entries === 0 && counts.errors === 0) throw new InvalidManifestError('the manifest lists no files');
}

/**
 * The bad lines of a manifest, gathered as they are found (while reading, then the missing objects):
 * all are counted, the first MANIFEST_ERRORS_KEPT by line are kept (a manifest of a million bad
 * lines does not hold a million messages).
 */
export class ManifestErrors {
  private kept: ManifestError[] = [];
  count = 0;

  add(line: number, message: string): void {
    this.count++;
    this.kept.push({ line, message });
    if (this.kept.length >= 2 * MANIFEST_ERRORS_KEPT) this.kept = this.sorted();
  }

  /** The object a line names does not exist. */
  missing(line: number, location: S3Location): void {
    this.add(line, `object ${formatS3Url(location)} not found`);
  }

  sorted(): ManifestError[] {
    return this.kept.sort((a, b) => a.line - b.line).slice(0, MANIFEST_ERRORS_KEPT);
  }
}

/**
 * A manifest is taken whole or refused whole: any bad line, or an entry whose object was not found,
 * refuses it, naming the lines (the first MANIFEST_ERRORS_SHOWN in the message, more in details).
 */
export function assertManifestAccepted(errors: ManifestErrors): void {
  if (errors.count) {
    const kept = errors.sorted();
    const shown = kept.slice(0, MANIFEST_ERRORS_SHOWN).map((e) => `line ${e.line}: ${e.message}`).join('; ');
    throw new InvalidManifestError(`manifest refused, nothing enqueued: ${errors.count} bad line(s): ${shown}${errors.count > MANIFEST_ERRORS_SHOWN ? '; …' : ''}`, {
      details: { errors: kept },
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

// ---- plans --------------------------------------------------------------------------------------

/** One (provider, model, mode, account) a plan prices; omitted fields are the request's (then the defaults). */
export interface PlanChoice {
  provider?: string;
  model?: string;
  mode?: string;
  account?: string;
}

/** A plan request: a create-batch request (nothing is enqueued) and what to compare and how to measure. */
export interface PlanRequest extends CreateBatchRequest {
  /** Choices to compare; default: the request's own. */
  choices?: PlanChoice[];
  /** Files measured at random when there are more (default DEFAULT_SAMPLE in plan-batch.ts). */
  sample?: number;
  /** Measure every file. */
  exact?: boolean;
  /** The sample's seed (reproducible plans); default random, and stated in the plan. */
  seed?: number;
}

/** Choices a plan compares at most. */
export const MAX_PLAN_CHOICES = 20;
/** The largest sample a plan draws (beyond it, ask for `exact`). */
export const MAX_PLAN_SAMPLE = 100_000;

/** A choice resolved: defaults applied, checked as a batch of it would be. */
export interface ResolvedChoice extends Routing {
  account: string;
}

/**
 * Check a plan request as creating its batch would be checked (validateCreateBatch), and every choice
 * as a batch of that choice: provider, model and mode, account, and the request's options for it.
 */
export function validatePlanRequest(config: Pick<Config, 'S3_ALLOWED_BUCKETS'>, req: PlanRequest): ReturnType<typeof validateCreateBatch> & { choices: ResolvedChoice[] } {
  if (req.sample !== undefined && !(Number.isInteger(req.sample) && req.sample >= 2 && req.sample <= MAX_PLAN_SAMPLE)) {
    throw new InvalidRequestError(`sample must be an integer from 2 to ${MAX_PLAN_SAMPLE}`);
  }
  if (req.seed !== undefined && !(Number.isInteger(req.seed) && req.seed >= 0 && req.seed <= 0xffffffff)) throw new InvalidRequestError('seed must be an integer from 0 to 4294967295');
  if (req.exact !== undefined && typeof req.exact !== 'boolean') throw new InvalidRequestError('exact must be true or false');
  if (req.plan !== undefined) throw new InvalidRequestError('a plan request cannot name a plan (plan is for creating a batch from one)');
  if (req.choices !== undefined && !(Array.isArray(req.choices) && req.choices.length >= 1 && req.choices.length <= MAX_PLAN_CHOICES)) {
    throw new InvalidRequestError(`choices must be a list of 1 to ${MAX_PLAN_CHOICES} {provider, model, mode, account}`);
  }
  const base = validateCreateBatch(config, req);
  const choices = (req.choices ?? [{}]).map((c, i): ResolvedChoice => {
    if (!c || typeof c !== 'object') throw new InvalidRequestError(`choices[${i}] must be an object`);
    for (const k of Object.keys(c)) if (!['provider', 'model', 'mode', 'account'].includes(k)) throw new InvalidRequestError(`choices[${i}]: unknown field ${JSON.stringify(k)}`);
    // A choice naming another provider does not inherit the request's model (it is the other provider's default).
    const provider = c.provider ?? req.provider;
    const model = c.model ?? (c.provider && c.provider !== req.provider ? undefined : req.model);
    const one: CreateBatchRequest = { ...req, provider, model, mode: c.mode ?? req.mode, account: c.account ?? req.account };
    const { manifest: _m, ...checked } = one;
    const { routing } = validateCreateBatch(config, { ...checked, source: req.source ?? formatS3Url({ bucket: base.out.bucket, key: '' }) });
    const account = parseJobSpec({ source: { bucket: base.out.bucket, key: 'validate', etag: 'validate' }, output: { bucket: base.out.bucket, keyBase: 'validate' }, provider: routing.provider, model: routing.model, mode: routing.mode, ...(one.account ? { account: one.account } : {}) }).account;
    return { ...routing, account };
  });
  return { ...base, choices };
}

/**
 * A plan read back from the PlanStore (Redis): JSON with the fields a plan is run and shown by. What
 * it asks to run is validated again as a create-batch request when a batch is made of it.
 */
export function parseStoredPlan(raw: string): Plan {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new InvalidRequestError('the stored plan is not JSON');
  }
  const p = json as Record<string, unknown> | null;
  const ok =
    p !== null &&
    typeof p === 'object' &&
    typeof p.planId === 'string' &&
    typeof p.source === 'string' &&
    typeof p.out === 'string' &&
    Array.isArray(p.choices) &&
    p.choices.every((c: unknown) => c !== null && typeof c === 'object' && ['provider', 'model', 'mode', 'account'].every((k) => typeof (c as Record<string, unknown>)[k] === 'string')) &&
    p.request !== null &&
    typeof p.request === 'object' &&
    typeof (p.request as Record<string, unknown>).out === 'string';
  if (!ok) throw new InvalidRequestError('the stored plan lacks its source, output, choices or request');
  return json as Plan;
}

// ---- usage (GET /v1/usage, scribe usage) ----------------------------------------------------------

/** The longest range of days one usage read may cover (a year, and a leap day). */
export const MAX_USAGE_DAYS = 366;
/** Days a usage read covers when it gives no `from`: the last 30, today included. */
export const DEFAULT_USAGE_DAYS = 30;

/** A usage query as a client sends it (query-string values are strings). */
export interface UsageQuery {
  account?: string;
  provider?: string;
  model?: string;
  /** First day, YYYY-MM-DD (UTC); default: DEFAULT_USAGE_DAYS − 1 days before `to`. */
  from?: string;
  /** Last day, YYYY-MM-DD (UTC), included; default: today. */
  to?: string;
  /** `day` (default) or `batch`. */
  by?: string;
}

export interface ValidUsageQuery {
  from: string;
  to: string;
  days: string[];
  by: UsageBy;
  filter: UsageFilter;
}

/**
 * A usage query checked: real calendar days (YYYY-MM-DD, UTC), `from` ≤ `to`, at most
 * MAX_USAGE_DAYS days, `by` day or batch, a known provider, an account of the spec's shape, a model
 * of at most 200 characters. `today` is the caller's (UTC) day.
 */
export function validateUsageQuery(q: UsageQuery, today: string): ValidUsageQuery {
  const assertDay = (name: string, day: string | undefined) => {
    if (day !== undefined && !isUsageDay(day)) throw new InvalidRequestError(`${name} must be a day YYYY-MM-DD (UTC), got ${shownId(day)}`);
  };
  assertDay(`from`, q.from); // a template literal: the layering test's import scan takes a quoted word after from for a module
  assertDay('to', q.to);
  const to = q.to ?? today;
  const from = q.from ?? dayMinus(to, DEFAULT_USAGE_DAYS - 1);
  if (from > to) throw new InvalidRequestError(`from (${from}) is after to (${to})`);
  const range = daysBetween(from, to);
  if (range.length > MAX_USAGE_DAYS) throw new InvalidRequestError(`from ${from} to ${to} is ${range.length} days; at most ${MAX_USAGE_DAYS} per read`);
  const by = q.by ?? 'day';
  if (by !== 'day' && by !== 'batch') throw new InvalidRequestError(`by must be day or batch, got ${shownId(by)}`);
  const filter: UsageFilter = {};
  if (q.provider !== undefined) {
    if (!isProviderName(q.provider)) throw new UnknownProviderError(`unknown provider ${shownId(q.provider)} (known: ${PROVIDERS.join(', ')})`);
    filter.provider = q.provider;
  }
  if (q.account !== undefined) {
    // The job spec's rule for an account (domain/job-spec.ts).
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(q.account)) throw new InvalidRequestError(`account must be 1-64 of [A-Za-z0-9_.-], got ${shownId(q.account)}`);
    filter.account = q.account;
  }
  if (q.model !== undefined) {
    if (!q.model.length || q.model.length > 200) throw new InvalidRequestError('model must be 1 to 200 characters');
    filter.model = q.model;
  }
  return { from, to, days: range, by, filter };
}
