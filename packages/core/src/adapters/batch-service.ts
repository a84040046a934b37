import { createHash, createHmac } from 'node:crypto';
import { Readable } from 'node:stream';
import { Queue, type Job, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { batchProgress, newBatchId, type BatchJobResult, type BatchJobState, type BatchProgress, type BatchRecord } from '../domain/batch';
import { checkCombination, isProviderName, PROVIDERS, CATALOGUE } from '../domain/catalogue';
import type { Config } from '../domain/config';
import {
  BatchNotFoundError,
  BucketNotAllowedError,
  InvalidManifestError,
  InvalidRequestError,
  InvalidStateError,
  JobNotFoundError,
  parseFailedReason,
  UnknownProviderError,
  UnsupportedCombinationError,
} from '../domain/errors';
import { normaliseEtag, outputKey, parseJobSpec, jobIdFor, type JobSpec, type JobSpecInput } from '../domain/job-spec';
import { parseManifest } from '../domain/manifest';
import { formatS3Url, outputKeyBase, parseS3Url, type S3Location } from '../domain/s3-url';
import type { ObjectInfo, Storage } from '../ports/storage';
import { BatchStore, type BatchJobEntry } from './redis/batch-store';
import { JobEnds } from './redis/job-ends';
import type { FleetQueues } from './bullmq/fleet-queues';
import { redisConnection } from './bullmq/queue';
import type { JobResult } from '../domain/job-result';
import { bullmqJobKey, RedisKeys } from './redis/keys';

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

export interface CreateBatchProgress {
  listed: number;
  /** Listed keys that are not inputs: folder markers and keys under the output prefix. */
  ignored: number;
  added: number;
  duplicates: number;
  skipped: number;
}

export interface CreateBatchResult extends CreateBatchProgress {
  batchId: string;
  /** Job ids in batch order (only for batches up to `returnIdsUpTo` files). */
  jobIds?: string[];
}

export interface JobView {
  id: string;
  batchId?: string;
  state: string;
  source: string;
  provider: string;
  model: string;
  mode: string;
  attemptsMade: number;
  progress: unknown;
  createdAt?: string;
  finishedAt?: string;
  outputs?: Record<string, string>;
  duration?: number;
  requestId?: string;
  error?: { code: string; message: string };
}

export type WebhookEvent = 'job.completed' | 'job.failed' | 'batch.completed';

export interface WebhookDelivery {
  /** Also sent as the `x-scribe-delivery` header (the same on every attempt: receivers can deduplicate). */
  id: string;
  event: WebhookEvent;
  url: string;
  state: 'pending' | 'delivering' | 'retrying' | 'delivered' | 'failed' | 'expired';
  attempts: number;
  createdAt?: string;
  lastError?: string;
  httpStatus?: number;
  deliveredAt?: string;
}

const HEAD_CONCURRENCY = 16;

async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

/** Sign a webhook body: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (replay-resistant). */
export function signWebhook(secret: string, body: string, timestamp = Math.floor(Date.now() / 1000)): string {
  const mac = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${mac}`;
}

/**
 * Batches and job operations, shared by the CLI, the HTTP API and the workers: create a batch from a
 * prefix or a manifest (skipping files whose outputs exist), follow its jobs, cancel, redrive,
 * finalise it with a report in S3, and queue signed webhooks.
 */
export class BatchService {
  readonly batches: BatchStore;
  readonly jobEnds: JobEnds;
  private readonly keys: RedisKeys;
  readonly control: Queue;
  readonly webhooks: Queue;

  constructor(
    private readonly deps: { config: Config; redis: Redis; storage: Storage; fleet: FleetQueues },
  ) {
    const { config } = deps;
    this.keys = RedisKeys.forQueue(config);
    this.batches = new BatchStore(deps.redis, this.keys.base);
    this.jobEnds = new JobEnds(deps.redis, this.keys.base, config.JOB_RETENTION_SECONDS);
    const connection = redisConnection(config, 'worker');
    this.control = new Queue(`${config.QUEUE_NAME}-control`, { connection, prefix: config.QUEUE_PREFIX, defaultJobOptions: { attempts: 10, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: 1000, removeOnFail: 1000 } });
    this.webhooks = new Queue(`${config.QUEUE_NAME}-webhooks`, {
      connection,
      prefix: config.QUEUE_PREFIX,
      defaultJobOptions: { attempts: config.WEBHOOK_ATTEMPTS, backoff: { type: 'exponential', delay: config.WEBHOOK_BACKOFF_MS, jitter: 0.3 }, removeOnComplete: { age: 7 * 24 * 3600 }, removeOnFail: { age: 30 * 24 * 3600 } },
    });
  }

  get cancelChannel(): string {
    return this.keys.cancelChannel();
  }

  // ---- creating -------------------------------------------------------------------------------

  /** Check everything about the request that can be checked before touching storage. */
  validate(req: CreateBatchRequest): { out: S3Location; source?: S3Location } {
    if (!req.source === !req.manifest) throw new InvalidRequestError('give exactly one of `source` (s3://bucket/prefix) or `manifest`');
    const out = parseS3Url(req.out);
    const source = req.source ? parseS3Url(req.source) : undefined;
    const allowed = this.deps.config.S3_ALLOWED_BUCKETS;
    for (const b of [out.bucket, source?.bucket, req.manifest?.defaultBucket]) {
      if (b && allowed.length && !allowed.includes(b)) throw new BucketNotAllowedError(`bucket ${b} is not in S3_ALLOWED_BUCKETS (${allowed.join(', ')})`);
    }
    const provider = req.provider ?? 'local';
    if (!isProviderName(provider)) throw new UnknownProviderError(`unknown provider ${JSON.stringify(provider)} (known: ${PROVIDERS.join(', ')})`);
    const reason = checkCombination(provider, req.model ?? CATALOGUE[provider].defaultModel, req.mode ?? 'batch');
    if (reason) throw new UnsupportedCombinationError(reason);
    if (req.priority !== undefined && !(Number.isInteger(req.priority) && req.priority >= 1 && req.priority <= 2_097_152)) {
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

  private specFor(req: CreateBatchRequest, obj: ObjectInfo, listedPrefix: string, out: S3Location, batchId: string, options?: JobSpecInput['options']): JobSpec {
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

  /**
   * Create a batch and enqueue its jobs page by page. A manifest is validated whole first: any bad
   * line (or a missing object) refuses the batch and nothing is enqueued.
   */
  async create(
    req: CreateBatchRequest,
    opts: {
      onProgress?: (p: CreateBatchProgress) => void;
      /** Called once the request has been validated and the batch record exists (before the first page is enqueued). */
      onCreated?: (batchId: string) => void;
      returnIdsUpTo?: number;
      decorate?: (spec: JobSpec) => JobSpec;
    } = {},
  ): Promise<CreateBatchResult> {
    const { out, source } = this.validate(req);
    let pages: AsyncIterable<Array<{ obj: ObjectInfo; listedPrefix: string; options?: JobSpecInput['options'] }>>;
    if (source) {
      const pageSize = Math.min(1000, this.deps.config.ENQUEUE_PAGE_SIZE);
      // The first page is listed before the batch exists: a missing bucket or an empty prefix is
      // refused with nothing created.
      const it = this.deps.storage.listPages(source.bucket, source.key, { pageSize })[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done || first.value.length === 0) throw new InvalidRequestError(`no objects under ${formatS3Url(source)}`);
      pages = (async function* () {
        let page: IteratorResult<ObjectInfo[]> = first;
        while (!page.done) {
          yield page.value.map((obj) => ({ obj, listedPrefix: source.key }));
          page = await it.next();
        }
      })();
    } else {
      const parsed = parseManifest(req.manifest!.text, req.manifest!.format, req.manifest!.defaultBucket);
      if (parsed.entries.length === 0 && parsed.errors.length === 0) throw new InvalidManifestError('the manifest lists no files');
      // Every object must exist: HEAD them all before enqueuing anything.
      const heads = await mapLimit(parsed.entries, HEAD_CONCURRENCY, (e) => this.deps.storage.head(e.location.bucket, e.location.key));
      heads.forEach((h, i) => {
        if (!h) parsed.errors.push({ line: parsed.entries[i]!.line, message: `object ${formatS3Url(parsed.entries[i]!.location)} not found` });
      });
      if (parsed.errors.length) {
        parsed.errors.sort((a, b) => a.line - b.line);
        const shown = parsed.errors.slice(0, 20).map((e) => `line ${e.line}: ${e.message}`).join('; ');
        throw new InvalidManifestError(`manifest refused, nothing enqueued: ${parsed.errors.length} bad line(s): ${shown}${parsed.errors.length > 20 ? '; …' : ''}`, {
          details: { errors: parsed.errors.slice(0, 1000) },
        });
      }
      const items = parsed.entries.map((e, i) => ({ obj: heads[i]!, listedPrefix: e.location.key.slice(0, e.location.key.lastIndexOf('/') + 1), ...(e.options ? { options: e.options } : {}) }));
      pages = (async function* () {
        for (let i = 0; i < items.length; i += 500) yield items.slice(i, i + 500);
      })();
    }

    const batchId = newBatchId();
    await this.batches.create({
      id: batchId,
      createdAt: new Date().toISOString(),
      source: req.source ?? 'manifest',
      out: req.out,
      provider: req.provider ?? 'local',
      mode: req.mode ?? 'batch',
      ...(req.model ? { model: req.model } : {}),
      ...(req.priority !== undefined ? { priority: req.priority } : {}),
      ...(req.webhookUrl ? { webhookUrl: req.webhookUrl } : {}),
    });
    opts.onCreated?.(batchId);
    const progress: CreateBatchProgress = { listed: 0, ignored: 0, added: 0, duplicates: 0, skipped: 0 };
    const jobIds: string[] = [];
    const jobOpts: JobsOptions = req.priority !== undefined ? { priority: req.priority } : {};
    try {
      await this.enqueuePages(batchId, req, out, pages, progress, jobIds, jobOpts, opts);
    } catch (e) {
      // Storage or Redis failed mid-way: the batch keeps (and finishes with) what was enqueued, and
      // says why it is short. Enqueuing the same source again adds only the missing files.
      await this.batches.setFields(batchId, { listError: e instanceof Error ? e.message : String(e) }).catch(() => undefined);
      if (await this.batches.seal(batchId).catch(() => false)) await this.scheduleFinalize(batchId).catch(() => undefined);
      throw e;
    }
    if (await this.batches.seal(batchId)) await this.scheduleFinalize(batchId);
    return { batchId, ...progress, ...(opts.returnIdsUpTo ? { jobIds } : {}) };
  }

  private async enqueuePages(
    batchId: string,
    req: CreateBatchRequest,
    out: S3Location,
    pages: AsyncIterable<Array<{ obj: ObjectInfo; listedPrefix: string; options?: JobSpecInput['options'] }>>,
    progress: CreateBatchProgress,
    jobIds: string[],
    jobOpts: JobsOptions,
    opts: { onProgress?: (p: CreateBatchProgress) => void; returnIdsUpTo?: number; decorate?: (spec: JobSpec) => JobSpec },
  ): Promise<void> {
    for await (const page of pages) {
      progress.listed += page.length;
      const candidates = page
        .filter(({ obj }) => !obj.key.endsWith('/') && !(obj.bucket === out.bucket && out.key !== '' && obj.key.startsWith(out.key)))
        .map(({ obj, listedPrefix, options }) => {
          const spec = this.specFor(req, obj, listedPrefix, out, batchId, options);
          return opts.decorate ? opts.decorate(spec) : spec;
        });
      // Files whose outputs already exist are skipped (one HEAD of the JSON, written last, each).
      const exists = req.force ? candidates.map(() => null) : await mapLimit(candidates, HEAD_CONCURRENCY, (s) => this.deps.storage.head(s.output.bucket, outputKey(s, 'json')));
      const entries: BatchJobEntry[] = [];
      const toAdd: JobSpec[] = [];
      candidates.forEach((spec, i) => {
        const id = jobIdFor(spec);
        if (exists[i]) {
          const outputs = Object.fromEntries(spec.output.formats.map((f) => [f, outputKey(spec, f)]));
          entries.push({ jobId: id, key: spec.source.key, bytes: spec.source.size ?? 0, state: 'skipped', result: { key: spec.source.key, state: 'skipped', outputs } });
        } else {
          toAdd.push(spec);
          entries.push({ jobId: id, key: spec.source.key, bytes: spec.source.size ?? 0 });
        }
        if (!opts.returnIdsUpTo || jobIds.length < opts.returnIdsUpTo) jobIds.push(id);
      });
      progress.ignored += page.length - candidates.length;
      progress.skipped += candidates.length - toAdd.length;
      if (req.force) await this.removeFinished(toAdd.map(jobIdFor));
      // Record the batch's jobs before they can run, so no transition is missed.
      await this.batches.addJobs(batchId, entries);
      const res = await this.deps.fleet.add(toAdd, jobOpts);
      progress.added += res.added;
      progress.duplicates += res.duplicates;
      await this.adoptDuplicates(batchId, res.duplicateIds);
      opts.onProgress?.({ ...progress });
    }
  }

  /** With `force`, finished jobs with the same id are removed so the new ones run again. */
  private async removeFinished(ids: string[]): Promise<void> {
    for (const id of ids) {
      const job = await this.deps.fleet.getJob(id);
      if (job && (await job.isCompleted() || await job.isFailed())) await job.remove();
    }
  }

  /**
   * A job that already exists (enqueued by an earlier batch) also belongs to this batch: record its
   * outcome now if it has one, else let the worker report to this batch too.
   */
  private async adoptDuplicates(batchId: string, ids: string[]): Promise<void> {
    for (const id of ids) {
      await this.deps.redis.sadd(this.keys.jobBatches(id), batchId);
      const job = (await this.deps.fleet.getJob(id)) as Job<JobSpec, JobResult> | undefined;
      const end = job ? await outcomeOfFinishedJob(job) : null;
      if (job && end) await this.jobEnded(job.data, id, job.timestamp, end);
    }
  }

  // ---- worker hooks ---------------------------------------------------------------------------

  private async batchesOf(spec: Pick<JobSpec, 'batchId'>, jobId: string): Promise<string[]> {
    const extra = await this.deps.redis.smembers(this.keys.jobBatches(jobId));
    return [...new Set([...(spec.batchId ? [spec.batchId] : []), ...extra])];
  }

  /** Called by the worker when an attempt starts; throws JobCancelled if its batch was cancelled. */
  async jobStarted(spec: JobSpec, jobId: string): Promise<{ cancelled: boolean }> {
    if (spec.batchId && (await this.batches.isCancelled(spec.batchId))) return { cancelled: true };
    for (const b of await this.batchesOf(spec, jobId)) {
      await this.batches.transition(b, jobId, 'active');
      await this.batches.markStarted(b);
    }
    return { cancelled: false };
  }

  /** A running job went back to the queue (its worker is shutting down): queued again in the books. */
  async jobHandedBack(spec: JobSpec, jobId: string): Promise<void> {
    for (const b of await this.batchesOf(spec, jobId)) await this.batches.transition(b, jobId, 'queued', undefined, 0, 0, 'start');
  }

  /**
   * THE one place a job's end is recorded: the processor's outcome (worker.ts), a failure BullMQ
   * decided on its own (the stalled limit: `WORKER_LOST`), a cancel, and the reconciler all come
   * here. The first terminal outcome of the job's life wins (JobEnds); every later report of it maps
   * to the same books entry (audio seconds counted once) and the same webhook delivery ids, so
   * calling this twice — after a crash between its steps, say — repairs instead of duplicating.
   * `first` is true for the one call that recorded the end (metrics count that one).
   */
  async jobEnded(spec: Pick<JobSpec, 'batchId' | 'source'>, jobId: string, createdAt: number, end: JobEnd): Promise<{ first: boolean; result: BatchJobResult }> {
    const claim = await this.jobEnds.claim(jobId, createdAt, resultOfEnd(spec.source.key, end));
    const r = claim.outcome;
    const event: WebhookEvent = r.state === 'completed' ? 'job.completed' : 'job.failed';
    for (const b of await this.batchesOf(spec, jobId)) {
      const t = await this.batches.transition(b, jobId, r.state, r, r.duration ?? 0, spec.source.size ?? 0);
      if (this.deps.config.WEBHOOK_JOB_EVENTS) {
        const batch = await this.batches.get(b);
        if (batch) await this.queueWebhook(event, { batchId: b, jobId, ...r }, { batchUrl: batch.webhookUrl, batchId: b, dedupe: `${jobId}|${claim.gen}|${createdAt}` });
      }
      if (t.last) await this.scheduleFinalize(b);
    }
    if (!spec.batchId && this.deps.config.WEBHOOK_JOB_EVENTS) await this.queueWebhook(event, { jobId, ...r }, { dedupe: `${jobId}|${claim.gen}|${createdAt}` });
    return { first: claim.first, result: r };
  }

  /**
   * A job BullMQ holds as finished, recorded through jobEnded (idempotent). For failures decided
   * inside BullMQ — the stalled limit — and for the reconciler. Returns whether it was finished.
   */
  async recordFinishedJob(job: Job<JobSpec, JobResult>): Promise<boolean> {
    const end = await outcomeOfFinishedJob(job);
    if (!end || !job.id) return false;
    await this.jobEnded(job.data, job.id, job.timestamp, end);
    return true;
  }

  /**
   * The reconciler: find jobs whose end is not in a batch's books (BullMQ failed them on its own, a
   * write was lost in a Redis restart, a hook crashed half-way) and record them, and finalise
   * batches that are done but never finished, so no batch can hang. Runs on every worker every
   * RECONCILE_INTERVAL_MS; a fleet-wide lock makes one sweep run at a time. Cost per sweep: every
   * `active` job of the unfinished batches, and up to `queuedPerBatch` of their queued ones (a cursor
   * walks the rest over later sweeps).
   */
  async reconcile(opts: { queuedPerBatch?: number } = {}): Promise<{ batches: number; recorded: number; finalised: number }> {
    const lockKey = this.keys.reconcileLock();
    const interval = this.deps.config.RECONCILE_INTERVAL_MS;
    if ((await this.deps.redis.set(lockKey, String(process.pid), 'PX', Math.max(1000, interval - 500), 'NX')) !== 'OK') return { batches: 0, recorded: 0, finalised: 0 };
    let recorded = 0;
    let finalised = 0;
    const ids = await this.batches.unfinished();
    for (const b of ids) {
      const batch = await this.batches.get(b);
      if (!batch || batch.listing) continue; // still being enqueued: its books run ahead of the queue
      const cursorKey = this.keys.reconcileCursor();
      const from = Number((await this.deps.redis.hget(cursorKey, b)) ?? 0);
      const limit = opts.queuedPerBatch ?? 2000;
      const queued = await this.batches.jobIds(b, 'queued', from, limit);
      await this.deps.redis.hset(cursorKey, b, queued.length < limit ? 0 : from + queued.length);
      const candidates = [...(await this.batches.jobIds(b, 'active', 0, 100_000)), ...queued];
      for (const jobId of candidates) {
        const known = await this.jobEnds.get(jobId);
        if (known) {
          // Recorded for the job but not in these books (a lost write): apply it here.
          const t = await this.batches.transition(b, jobId, known.state, known, known.duration ?? 0);
          if (t.applied) recorded += 1;
          if (t.last) await this.scheduleFinalize(b);
          continue;
        }
        const job = (await this.deps.fleet.getJob(jobId)) as Job<JobSpec, JobResult> | undefined;
        if (job) {
          if (await this.recordFinishedJob(job)) recorded += 1;
        } else {
          // Neither in the queue nor ended: it vanished (a Redis restart lost its add). It ends failed, visibly.
          const cancelled = batch.status === 'cancelled';
          const r: BatchJobResult = { key: jobId, state: cancelled ? 'cancelled' : 'failed', errorCode: cancelled ? 'JOB_CANCELLED' : 'JOB_LOST', errorMessage: 'the job is no longer in the queue and its end was never recorded' };
          const t = await this.batches.transition(b, jobId, r.state, r);
          if (t.applied) recorded += 1;
          if (t.last) await this.scheduleFinalize(b);
        }
      }
      if (await this.batches.needsFinalize(b)) {
        const stale = await this.batches.doneSeenFor(b);
        // Done for two sweeps and still not finished: its finalisation was lost; run it here.
        if (stale >= 2 * interval) {
          await this.batches.claimFinalize(b);
          await this.finalize(b);
          finalised += 1;
        } else await this.scheduleFinalize(b);
      }
    }
    return { batches: ids.length, recorded, finalised };
  }

  async scheduleFinalize(batchId: string): Promise<void> {
    // One finalisation per run of the batch (a redrive starts a new run): adding it twice adds nothing.
    const runs = await this.batches.runs(batchId);
    await this.control.add('finalize-batch', { batchId }, { jobId: `finalize-${batchId}-${runs}` });
  }

  /** Write the report (JSONL, one line per file) and a summary to S3, mark the batch finished, notify. Idempotent. */
  async finalize(batchId: string): Promise<BatchRecord> {
    const batch = await this.batches.get(batchId);
    if (!batch) throw new BatchNotFoundError(`batch ${batchId} not found`);
    if (batch.finishedAt && batch.report) return batch;
    const out = parseS3Url(batch.out);
    const base = `${out.key === '' || out.key.endsWith('/') ? out.key : `${out.key}/`}_reports/${batchId}`;
    const store = this.batches;
    const lines = Readable.from(
      (async function* () {
        for await (const page of store.results(batchId)) {
          yield page
            .map(([jobId, r]) =>
              JSON.stringify({
                job_id: jobId,
                key: r.key,
                status: r.state,
                duration: r.duration ?? null,
                request_id: r.requestId ?? null,
                outputs: r.outputs ?? null,
                error_code: r.errorCode ?? null,
                error_message: r.errorMessage ?? null,
                warnings: r.warnings ?? [],
              }),
            )
            .join('\n') + '\n';
        }
      })(),
    );
    await this.deps.storage.put(out.bucket, `${base}.jsonl`, lines, { contentType: 'application/x-ndjson' });
    const finishedAt = new Date().toISOString();
    const reportUrl = formatS3Url({ bucket: out.bucket, key: `${base}.jsonl` });
    const final: BatchRecord = { ...batch, status: batch.status === 'cancelled' ? 'cancelled' : 'finished', finishedAt, report: reportUrl };
    await this.deps.storage.put(out.bucket, `${base}.summary.json`, `${JSON.stringify({ ...final, progress: batchProgress(final) }, null, 2)}\n`, { contentType: 'application/json' });
    await this.batches.setFields(batchId, { status: final.status, finishedAt, report: reportUrl });
    const runs = await this.batches.runs(batchId);
    await this.queueWebhook(
      'batch.completed',
      { batchId, status: final.status, counts: final.counts, total: final.total, audioSecondsDone: final.audioSecondsDone, report: reportUrl },
      { batchUrl: batch.webhookUrl, batchId, dedupe: `${batchId}|${runs}` },
    );
    return final;
  }

  // ---- reading --------------------------------------------------------------------------------

  async getBatch(id: string): Promise<{ batch: BatchRecord; progress: BatchProgress }> {
    const batch = await this.batches.get(id);
    if (!batch) throw new BatchNotFoundError(`batch ${id} not found`);
    return { batch, progress: batchProgress(batch) };
  }

  async listBatchJobs(id: string, opts: { state?: BatchJobState; offset?: number; limit?: number } = {}) {
    if (!(await this.batches.get(id))) throw new BatchNotFoundError(`batch ${id} not found`);
    const page = await this.batches.jobsPage(id, opts.offset ?? 0, Math.min(500, opts.limit ?? 100), opts.state);
    return Promise.all(page.map(async (p) => ({ ...p, result: await this.batches.result(id, p.jobId) })));
  }

  async getJob(id: string): Promise<JobView> {
    const job = (await this.deps.fleet.getJob(id)) as Job<JobSpec, JobResult> | undefined;
    if (!job) throw new JobNotFoundError(`job ${id} not found (it may have been removed after the retention period)`);
    const state = await job.getState();
    const view: JobView = {
      id,
      state,
      source: formatS3Url({ bucket: job.data.source.bucket, key: job.data.source.key }),
      provider: job.data.provider,
      model: job.data.model,
      mode: job.data.mode,
      attemptsMade: job.attemptsMade,
      progress: job.progress,
      createdAt: new Date(job.timestamp).toISOString(),
    };
    if (job.data.batchId) view.batchId = job.data.batchId;
    if (job.finishedOn) view.finishedAt = new Date(job.finishedOn).toISOString();
    if (state === 'completed' && job.returnvalue) Object.assign(view, { outputs: job.returnvalue.outputs, duration: job.returnvalue.duration, requestId: job.returnvalue.requestId });
    if (state === 'failed') view.error = parseFailedReason(job.failedReason) ?? { code: 'INTERNAL', message: job.failedReason ?? '' };
    return view;
  }

  // ---- cancel and redrive ---------------------------------------------------------------------
  // The state rules live here, not in the front ends: cancelling a finished job or batch, and
  // redriving what has not failed, are INVALID_STATE (CLI exit 7, HTTP 409).

  /** Cancel one job: removed if not started, aborted (→ JOB_CANCELLED) on its worker if running. */
  async cancelJob(id: string): Promise<{ id: string; state: 'cancelled' | 'cancelling' }> {
    const r = await this.cancelOne(id);
    if (r.state === 'completed' || r.state === 'failed') throw new InvalidStateError(`job ${id} already ${r.state}: nothing to cancel`);
    return { id, state: r.state };
  }

  private async cancelOne(id: string): Promise<{ id: string; state: 'cancelled' | 'cancelling' | 'completed' | 'failed' }> {
    const job = (await this.deps.fleet.getJob(id)) as Job<JobSpec, JobResult> | undefined;
    if (!job) throw new JobNotFoundError(`job ${id} not found`);
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') return { id, state };
    if (state === 'active') {
      await this.deps.redis.publish(this.cancelChannel, id);
      return { id, state: 'cancelling' };
    }
    try {
      await job.remove();
    } catch (e) {
      // A worker took it between the two calls (BullMQ refuses to remove a locked job): abort it there.
      if ((await job.getState()) !== 'active') throw e;
      await this.deps.redis.publish(this.cancelChannel, id);
      return { id, state: 'cancelling' };
    }
    await this.jobEnded(job.data, id, job.timestamp, { error: { code: 'JOB_CANCELLED', message: 'cancelled before it started' } });
    return { id, state: 'cancelled' };
  }

  async cancelBatch(id: string): Promise<{ cancelled: number; cancelling: number }> {
    const batch = await this.batches.get(id);
    if (!batch) throw new BatchNotFoundError(`batch ${id} not found`);
    if (batch.finishedAt) throw new InvalidStateError(`batch ${id} already ${batch.status}: nothing to cancel`);
    await this.batches.setFields(id, { status: 'cancelled' });
    let cancelled = 0;
    let cancelling = 0;
    for (const state of ['queued', 'active'] as const) {
      for (;;) {
        const ids = await this.batches.jobIds(id, state, 0, 500);
        const todo = ids.filter((x) => x);
        if (!todo.length) break;
        let progressed = false;
        for (const jobId of todo) {
          const r = await this.cancelOne(jobId).catch(() => ({ id: jobId, state: 'gone' as const }));
          if (r.state === 'cancelled' || r.state === 'gone') {
            cancelled += 1;
            progressed = true;
            if (r.state === 'gone') {
              const t = await this.batches.transition(id, jobId, 'cancelled', { key: jobId, state: 'cancelled', errorCode: 'JOB_CANCELLED', errorMessage: 'job no longer exists' });
              if (t.last) await this.scheduleFinalize(id);
            }
          } else if (r.state === 'cancelling') cancelling += 1;
          else progressed = true; // finished meanwhile: its end is (or will be) in the books
        }
        if (!progressed || state === 'active') break;
      }
    }
    // Nothing was left to end (every job had finished): the batch finishes now, as cancelled.
    if (await this.batches.needsFinalize(id)) await this.scheduleFinalize(id);
    return { cancelled, cancelling };
  }

  /** Put a failed job back in the queue (attempts start again). */
  async redriveJob(id: string): Promise<{ id: string; state: string }> {
    const job = (await this.deps.fleet.getJob(id)) as Job<JobSpec, JobResult> | undefined;
    if (!job) throw new JobNotFoundError(`job ${id} not found`);
    const state = await job.getState();
    if (state !== 'failed') throw new InvalidStateError(`job ${id} is ${state}: only failed jobs can be redriven`);
    await this.jobEnds.reopen(id);
    for (const b of await this.batchesOf(job.data, id)) {
      // Open again: it finalises (a new report) when the redriven jobs end.
      await this.batches.reopen(b);
      await this.batches.transition(b, id, 'queued', undefined, 0, 0, 'force');
    }
    // Attempts start again, stalls included (BullMQ keeps its stall counter across a retry).
    await this.deps.redis.hset(bullmqJobKey(job.queueQualifiedName, id), 'stc', 0);
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    return { id, state: 'waiting' };
  }

  async redriveBatch(id: string): Promise<{ redriven: number }> {
    if (!(await this.batches.get(id))) throw new BatchNotFoundError(`batch ${id} not found`);
    let redriven = 0;
    let seen = 0;
    for (;;) {
      const ids = await this.batches.jobIds(id, 'failed', 0, 500);
      if (!ids.length) break;
      seen += ids.length;
      let progressed = false;
      for (const jobId of ids) {
        await this.redriveJob(jobId).then(
          () => {
            redriven += 1;
            progressed = true;
          },
          () => undefined, // gone (retention) or not failed in the queue: it stays failed in the books
        );
      }
      if (!progressed || ids.length < 500) break;
    }
    if (seen === 0) throw new InvalidStateError(`batch ${id} has no failed jobs: nothing to redrive`);
    return { redriven };
  }

  // ---- webhooks -------------------------------------------------------------------------------

  /**
   * Queue one delivery per configured URL (the batch's and WEBHOOK_URL); deliveries retry with
   * backoff. The delivery id (the BullMQ job id, sent as `x-scribe-delivery`) is derived from
   * `dedupe` (job + life + redrive generation, or batch + run), the event and the URL, so queuing the
   * same event again adds nothing and a receiver that sees an id twice knows it is the same event.
   */
  async queueWebhook(event: WebhookEvent, payload: Record<string, unknown>, opts: { batchUrl?: string | undefined; batchId?: string; dedupe: string }): Promise<void> {
    const { config } = this.deps;
    const urls = [...new Set([opts.batchUrl, config.WEBHOOK_URL].filter((u): u is string => Boolean(u)))];
    if (!urls.length || !config.WEBHOOK_SECRET) return;
    const body = { event, createdAt: new Date().toISOString(), data: payload };
    const owner = opts.batchId ?? (typeof payload.batchId === 'string' ? payload.batchId : undefined);
    for (const url of urls) {
      const jobId = `wh-${createHash('sha256').update(`${event}|${owner ?? ''}|${opts.dedupe}|${url}`).digest('hex').slice(0, 32)}`;
      const job = await this.webhooks.add(event, { url, body, ...(owner ? { batchId: owner } : {}) }, { jobId });
      // Index the delivery under its batch, so its status can be listed without scanning the queue.
      if (owner && job.id) {
        const key = this.keys.batchWebhooks(owner);
        await this.deps.redis.multi().zadd(key, 'NX', Date.now(), job.id).expire(key, 30 * 24 * 3600).exec();
      }
    }
  }

  /**
   * Deliveries of a batch's webhooks, newest first: `pending` (waiting), `delivering` (being sent),
   * `retrying` (an attempt failed, the next one is scheduled), `delivered`, `failed` (attempts used
   * up), or `expired` (removed from Redis after its retention).
   */
  async webhookDeliveries(batchId: string, opts: { offset?: number; limit?: number } = {}): Promise<{ total: number; deliveries: WebhookDelivery[] }> {
    const key = this.keys.batchWebhooks(batchId);
    const offset = Math.max(0, opts.offset ?? 0);
    const limit = Math.min(500, Math.max(1, opts.limit ?? 100));
    const [total, ids] = await Promise.all([this.deps.redis.zcard(key), this.deps.redis.zrevrange(key, offset, offset + limit - 1)]);
    const deliveries = await Promise.all(
      ids.map(async (id): Promise<WebhookDelivery> => {
        const j = await this.webhooks.getJob(id);
        if (!j) return { id, event: 'job.completed', url: '', state: 'expired', attempts: 0 };
        const state = await j.getState();
        const rv = j.returnvalue as { status?: number } | null;
        return {
          id,
          event: j.name as WebhookEvent,
          url: j.data.url as string,
          state: state === 'completed' ? 'delivered' : state === 'failed' ? 'failed' : state === 'active' ? 'delivering' : j.attemptsMade > 0 ? 'retrying' : 'pending',
          attempts: j.attemptsMade,
          createdAt: new Date(j.timestamp).toISOString(),
          ...(j.failedReason ? { lastError: j.failedReason } : {}),
          ...(state === 'completed' && rv?.status ? { httpStatus: rv.status } : {}),
          ...(state === 'completed' && j.finishedOn ? { deliveredAt: new Date(j.finishedOn).toISOString() } : {}),
        };
      }),
    );
    return { total, deliveries };
  }

  async close(): Promise<void> {
    await this.control.close();
    await this.webhooks.close();
  }
}

/** POST one webhook: signed body, 10 s timeout; a non-2xx answer throws (BullMQ retries with backoff). */
export async function deliverWebhook(secret: string, url: string, body: unknown, attempt: number, deliveryId?: string): Promise<{ status: number }> {
  const text = JSON.stringify(body);
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-scribe-signature': signWebhook(secret, text),
      'x-scribe-event': String((body as { event?: string }).event ?? ''),
      'x-scribe-attempt': String(attempt),
      ...(deliveryId ? { 'x-scribe-delivery': deliveryId } : {}),
    },
    body: text,
    signal: AbortSignal.timeout(10_000),
  });
  await res.arrayBuffer().catch(() => undefined);
  if (res.status < 200 || res.status >= 300) throw new Error(`webhook ${new URL(url).host} answered HTTP ${res.status}`);
  return { status: res.status };
}


/** How a job ended, as the processor or BullMQ says it: a result, or an error with a stable code. */
export type JobEnd = { result: JobResult; error?: undefined; warnings?: string[] } | { result?: undefined; error: { code: string; message: string } };

/** BullMQ's own failure messages, given the stable codes they mean here. */
const BULLMQ_FAILURES: Array<[RegExp, string]> = [
  [/stalled more than allowable limit/, 'WORKER_LOST'],
  [/started more than allowable limit/, 'WORKER_LOST'],
];

/** The end of a job BullMQ holds as finished (completed, or failed for good), or null while it is not. */
export async function outcomeOfFinishedJob(job: Job<JobSpec, JobResult>): Promise<JobEnd | null> {
  const state = await job.getState();
  if (state === 'completed') return job.returnvalue ? { result: job.returnvalue } : { error: { code: 'INTERNAL', message: 'completed without a result' } };
  if (state !== 'failed') return null;
  const reason = job.failedReason ?? '';
  const known = BULLMQ_FAILURES.find(([re]) => re.test(reason));
  if (known) return { error: { code: known[1], message: `the job's worker was lost (${job.stalledCounter} stall(s)): ${reason}` } };
  return { error: parseFailedReason(reason) ?? { code: 'INTERNAL', message: 'failed without a reason' } };
}

function resultOfEnd(key: string, end: JobEnd): BatchJobResult {
  if (end.result) {
    const warnings = end.result.warnings ?? [];
    return { key, state: 'completed', duration: end.result.duration, requestId: end.result.requestId, outputs: end.result.outputs, ...(warnings.length ? { warnings } : {}) };
  }
  return { key, state: end.error.code === 'JOB_CANCELLED' ? 'cancelled' : 'failed', errorCode: end.error.code, errorMessage: end.error.message };
}
