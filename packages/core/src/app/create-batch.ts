/**
 * Creating a batch from a prefix or a manifest: validated first (app/validate.ts), then listed and
 * enqueued page by page, skipping files whose outputs exist; jobs an earlier batch enqueued are
 * adopted, not added again. A prefix's pages go through its drip feed (feed-batch.ts).
 */
import { newBatchId } from '../domain/batch';
import { sha256Hex } from '../domain/canonical';
import { InvalidRequestError, InvalidS3UrlError } from '../domain/errors';
import { outcomeOfFinishedJob } from '../domain/job-end';
import { jobIdFor, outputKey, type JobSpec, type JobSpecInput } from '../domain/job-spec';
import { asPrefix, formatS3Url, type S3Location } from '../domain/s3-url';
import type { BatchJobEntry } from '../ports/batch-store';
import type { ObjectInfo } from '../ports/storage';
import { hasLimits, limitsOf } from '../domain/budget';
import { nowIso, nowMs, type BatchDeps } from './deps';
import { scheduleFinalize } from './finalize-batch';
import { jobEnded } from './job-lifecycle';
import { checkManifest, manifestPages } from './manifest-batch';
import { ListingCursor } from './object-lookup';
import { feedBatch } from './feed-batch';
import { isIgnoredKey, specFor, storedFeedRequest, validateCreateBatch, type CreateBatchRequest } from './validate';

export type { CreateBatchRequest } from './validate';

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
  /**
   * A prefix batch whose listing goes on after this call: its cap bucket's backlog is full
   * (BACKLOG_PER_BUCKET), and the workers' feeder enqueues the rest as jobs drain. The counts above
   * are this call's; the batch's own grow.
   */
  feeding?: boolean;
  /** Job ids in batch order (only for batches up to `returnIdsUpTo` files). */
  jobIds?: string[];
}

export interface CreateBatchOptions {
  onProgress?: (p: CreateBatchProgress) => void;
  /** Called once the request has been validated and the batch record exists (before the first page is enqueued). */
  onCreated?: (batchId: string) => void;
  returnIdsUpTo?: number;
  decorate?: (spec: JobSpec) => JobSpec;
}

export type CreateBatchDeps = Pick<BatchDeps, 'config' | 'storage' | 'queue' | 'batches' | 'jobEnds' | 'finalizeQueue' | 'outbox' | 'clock' | 'budgets' | 'prices'>;

export type Page = Array<{ obj: ObjectInfo; listedPrefix: string; options?: JobSpecInput['options'] }>;

/**
 * Create a batch and enqueue its jobs page by page. A manifest is validated whole first: any bad
 * line (or a missing object) refuses the batch and nothing is enqueued. A prefix is drip-fed: pages
 * are enqueued while its bucket's backlog has room, and the rest by the workers' feeder.
 */
export async function createBatch(deps: CreateBatchDeps, req: CreateBatchRequest, opts: CreateBatchOptions = {}): Promise<CreateBatchResult> {
  const { out, source, routing } = validateCreateBatch(deps.config, req);
  const outPrefix = asPrefix(out.key);
  let pages: AsyncIterable<Page> | undefined;
  if (source) {
    // The first page is listed before the batch exists: a missing bucket or an empty prefix is
    // refused with nothing created. The batch is then drip-fed from its first key (feed-batch.ts).
    const it = deps.storage.listPages(source.bucket, source.key, { pageSize: 1 })[Symbol.asyncIterator]();
    const first = await it.next();
    await it.return?.();
    if (first.done || first.value.length === 0) throw new InvalidRequestError(`no objects under ${formatS3Url(source)}`);
  } else {
    // Read whole first (limits, every line's location checked, every object looked up), then again
    // page by page to enqueue: see manifest-batch.ts.
    const checked = await checkManifest(deps, req.manifest!, routing);
    pages = manifestPages(req.manifest!, checked, deps.config);
  }

  const limits = limitsOf(req);
  if (hasLimits(limits) && !deps.budgets) throw new InvalidRequestError('budgets are not enforced by this front end: leave maxAudioHours / maxCost out');
  const batchId = newBatchId(new Date(nowMs(deps)));
  await deps.batches.create({
    id: batchId,
    createdAt: nowIso(deps),
    source: req.source ?? 'manifest',
    out: req.out,
    provider: req.provider ?? 'local',
    mode: req.mode ?? 'batch',
    ...(req.model ? { model: req.model } : {}),
    ...(req.priority !== undefined ? { priority: req.priority } : {}),
    ...(req.webhookUrl ? { webhookUrl: req.webhookUrl } : {}),
    ...(req.plan ? { plan: { id: req.plan.id, choice: req.plan.choice } } : {}),
    ...(source ? { feed: storedFeedRequest(req) } : {}),
  });
  // Its budget, before any of its jobs can start (domain/budget.ts).
  if (hasLimits(limits)) await deps.budgets!.setLimits(batchId, limits);
  opts.onCreated?.(batchId);
  const progress: CreateBatchProgress = { listed: 0, ignored: 0, added: 0, duplicates: 0, skipped: 0 };
  const jobIds: string[] = [];
  let feeding = false;
  try {
    if (pages) await enqueuePages(deps, batchId, req, out, outPrefix, pages, progress, jobIds, opts);
    else feeding = !(await feedBatch(deps, batchId, { first: true, progress, jobIds, page: opts })).ended;
  } catch (e) {
    // Storage or Redis failed mid-way: the batch keeps (and finishes with) what was enqueued, and
    // says why it is short. Enqueuing the same source again adds only the missing files.
    await deps.batches.setFields(batchId, { listError: e instanceof Error ? e.message : String(e) }).catch(() => undefined);
    await deps.batches.endFeed(batchId).catch(() => false);
    if (await deps.batches.seal(batchId).catch(() => false)) await scheduleFinalize(deps, batchId).catch(() => undefined);
    throw e;
  }
  if (pages && (await deps.batches.seal(batchId))) await scheduleFinalize(deps, batchId);
  return { batchId, ...progress, ...(source ? { feeding } : {}), ...(opts.returnIdsUpTo ? { jobIds } : {}) };
}

/** What one page of a batch's files becomes: its books entries, and the specs to enqueue. */
export interface BookedPage {
  entries: BatchJobEntry[];
  toAdd: JobSpec[];
}

/**
 * Turn one page of listed files into books entries and job specs: ignored keys dropped, unsafe keys
 * failed alone (INVALID_S3_URL), files whose outputs exist skipped. Counts into `progress`.
 */
export async function bookPage(
  deps: Pick<CreateBatchDeps, 'storage'>,
  batchId: string,
  req: CreateBatchRequest,
  out: S3Location,
  page: Page,
  outputs: ListingCursor | undefined,
  progress: CreateBatchProgress,
  jobIds: string[],
  opts: Pick<CreateBatchOptions, 'returnIdsUpTo' | 'decorate'>,
): Promise<BookedPage> {
  progress.listed += page.length;
  // A listed object whose key cannot be written back safely (a `..` or `//` segment, a backslash,
  // a control character: S3 allows them) fails alone, visibly in the books and the report, with
  // INVALID_S3_URL; it does not stop the listing of the other files.
  const refused: BatchJobEntry[] = [];
  const candidates = page
    .filter(({ obj }) => !isIgnoredKey(obj, out))
    .flatMap(({ obj, listedPrefix, options }) => {
      let spec: JobSpec;
      try {
        spec = specFor(req, obj, listedPrefix, out, batchId, options);
      } catch (e) {
        if (!(e instanceof InvalidS3UrlError)) throw e;
        const jobId = `tx_${sha256Hex(`unsafe-key|${obj.bucket}|${obj.key}|${obj.etag}`).slice(0, 40)}`;
        refused.push({ jobId, key: obj.key, bytes: obj.size ?? 0, state: 'failed', result: { key: obj.key, state: 'failed', errorCode: e.code, errorMessage: e.message } });
        return [];
      }
      return [opts.decorate ? opts.decorate(spec) : spec];
    });
  // Files whose outputs already exist are skipped (their JSON is written last).
  const exists = outputs ? await outputs.find(candidates.map((s) => ({ bucket: s.output.bucket, key: outputKey(s, 'json') }))) : candidates.map(() => null);
  const entries: BatchJobEntry[] = [...refused];
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
    // Kept only when asked for (a 100 000-file batch would otherwise hold every id until it returns).
    if (opts.returnIdsUpTo && jobIds.length < opts.returnIdsUpTo) jobIds.push(id);
  });
  progress.ignored += page.length - candidates.length - refused.length;
  progress.skipped += candidates.length - toAdd.length;
  return { entries, toAdd };
}

/** Enqueue booked jobs: existing ones (same id) are adopted by this batch; with `force`, finished ones run again. */
export async function enqueueBooked(deps: CreateBatchDeps, batchId: string, req: CreateBatchRequest, toAdd: JobSpec[], progress: CreateBatchProgress): Promise<void> {
  const res = await deps.queue.add(toAdd, req.priority !== undefined ? { priority: req.priority } : {});
  progress.added += res.added;
  progress.duplicates += res.duplicates;
  await adoptDuplicates(deps, batchId, res.duplicateIds);
}

async function enqueuePages(
  deps: CreateBatchDeps,
  batchId: string,
  req: CreateBatchRequest,
  out: S3Location,
  outPrefix: string,
  pages: AsyncIterable<Page>,
  progress: CreateBatchProgress,
  jobIds: string[],
  opts: Pick<CreateBatchOptions, 'onProgress' | 'returnIdsUpTo' | 'decorate'>,
): Promise<void> {
  // Do outputs exist? One listing of the output keys in step with the pages (object-lookup.ts).
  const outputs = req.force ? undefined : new ListingCursor(deps.storage, out.bucket, outPrefix);
  for await (const page of readAhead(pages)) {
    const { entries, toAdd } = await bookPage(deps, batchId, req, out, page, outputs, progress, jobIds, opts);
    if (req.force) await removeFinished(deps, toAdd.map(jobIdFor));
    // Record the batch's jobs before they can run, so no transition is missed.
    await deps.batches.addJobs(batchId, entries);
    await enqueueBooked(deps, batchId, req, toAdd, progress);
    opts.onProgress?.({ ...progress });
  }
}

/**
 * The pages of `pages`, each read (listed, or parsed from the manifest) while the one before it is
 * being enqueued: one page ahead, so at most two are held. The page after a failure or an
 * interruption is dropped unread; an error reading a page surfaces after the pages before it.
 */
async function* readAhead<T>(pages: AsyncIterable<T>): AsyncGenerator<T> {
  const it = pages[Symbol.asyncIterator]();
  const read = () => {
    const p = it.next();
    p.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
    return p;
  };
  let next = read();
  let done = false;
  try {
    for (;;) {
      const page = await next;
      if (page.done) {
        done = true;
        return;
      }
      next = read();
      yield page.value;
    }
  } finally {
    if (!done) await next.then(() => it.return?.(), () => undefined).catch(() => undefined);
  }
}

/** With `force`, finished jobs with the same id are removed so the new ones run again. */
export async function removeFinished(deps: Pick<BatchDeps, 'queue'>, ids: string[]): Promise<void> {
  for (const id of ids) {
    const job = await deps.queue.get(id);
    if (job && (job.state === 'completed' || job.state === 'failed')) await deps.queue.remove(id);
  }
}

/**
 * A job that already exists (enqueued by an earlier batch) also belongs to this batch: record its
 * outcome now if it has one, else let the worker report to this batch too.
 */
async function adoptDuplicates(deps: CreateBatchDeps, batchId: string, ids: string[]): Promise<void> {
  for (const id of ids) {
    await deps.batches.addJobBatch(id, batchId);
    const job = await deps.queue.get(id);
    const end = job ? outcomeOfFinishedJob(job) : null;
    if (job && end) await jobEnded(deps, job.spec, id, job.createdAt, end);
  }
}
