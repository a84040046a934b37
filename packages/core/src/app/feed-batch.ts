/**
 * The drip feed: a prefix batch keeps a bounded number of its jobs in Redis. Its record holds a
 * durable cursor (the last key fed, `feedAfter`); a page is listed after it (S3 ListObjectsV2
 * `StartAfter`, so the listing is the same whoever resumes it), booked and the cursor moved in one
 * compare-and-set (two feeders never book a page twice), then enqueued. While a bucket's queue holds
 * BACKLOG_PER_BUCKET unfinished jobs or more, nothing more is fed to it: the create call stops there
 * and the workers' feeder (feedBatches, every FEED_INTERVAL_MS, one at a time fleet-wide) goes on as
 * jobs drain, batches by priority then age. A feeder that dies between booking a page and enqueuing
 * it leaves the page's redo mark, and the next pass enqueues the page's still-queued jobs.
 *
 * The same pass spills finished books (spillBatch): a batch's completed and skipped entries, once
 * BOOKS_SPILL_AT of them are in Redis, go with their results to a part of its report in S3, so the
 * books of a batch of any size stay bounded too.
 */
import { randomBytes } from 'node:crypto';
import { ScribeError } from '../domain/errors';
import { jobIdFor } from '../domain/job-spec';
import { asPrefix, type S3Location } from '../domain/s3-url';
import type { ObjectInfo } from '../ports/storage';
import { bookPage, enqueueBooked, removeFinished, type CreateBatchDeps, type CreateBatchOptions, type CreateBatchProgress } from './create-batch';
import type { BatchDeps } from './deps';
import { reportLine, scheduleFinalize } from './finalize-batch';
import { ListingCursor } from './object-lookup';
import { MAX_LIST_PAGE, parseFeedRequest, reportLocation, specFor, type CreateBatchRequest } from './validate';

/** The fleet-wide lock one feeder pass holds (FleetLock names it). */
export const FEED_LOCK = 'feed';
/** Pages one batch is fed in one pass at most, so a pass over many batches ends. */
const PAGES_PER_PASS = 50;

export type FeedDeps = CreateBatchDeps & Pick<BatchDeps, 'lock'>;

interface Feed {
  req: CreateBatchRequest;
  out: S3Location;
  source: S3Location;
}

export interface FeedOptions {
  /** The create call: its first page is fed whatever the backlog, so the batch starts. */
  first?: boolean;
  maxPages?: number;
  progress?: CreateBatchProgress;
  jobIds?: string[];
  page?: Pick<CreateBatchOptions, 'onProgress' | 'returnIdsUpTo' | 'decorate'>;
}

/**
 * Feed a batch while its bucket's backlog has room (at most `maxPages` pages). `ended`: the listing
 * is exhausted (the batch is sealed) or the batch has no feed.
 */
export async function feedBatch(deps: CreateBatchDeps, batchId: string, opts: FeedOptions = {}): Promise<{ pages: number; ended: boolean }> {
  const progress = opts.progress ?? { listed: 0, ignored: 0, added: 0, duplicates: 0, skipped: 0 };
  const maxPages = opts.maxPages ?? Infinity;
  let pages = 0;
  let tries = 0;
  // The next page, listed while this one is booked and enqueued (StartAfter its last key): at most
  // one listing ahead, dropped if the cursor went elsewhere.
  let ahead: Ahead | undefined;
  while (pages < maxPages && tries++ < maxPages + 10) {
    const state = await deps.batches.feedState(batchId);
    if (!state || state.after === null) return { pages, ended: true };
    const feed = parseFeedRequest(deps.config, state.request);
    if (await deps.batches.isCancelled(batchId)) {
      await endFeed(deps, batchId);
      return { pages, ended: true };
    }
    if (!(opts.first && pages === 0)) {
      const b = await deps.queue.backlog(specFor(feed.req, { bucket: feed.out.bucket, key: 'backlog', etag: 'backlog', size: 0 }, '', feed.out, batchId));
      if (b.pending >= b.window) return { pages, ended: false };
    }
    const listed = ahead?.after === state.after ? ahead.objects : listPage(deps, feed.source, state.after);
    ahead = undefined;
    const r = await feedPage(deps, batchId, feed, state.after, listed, pages + 1 < maxPages ? (a) => (ahead = a) : undefined, progress, opts.jobIds ?? [], opts.page ?? {});
    if (r === 'ended') return { pages: pages + 1, ended: true };
    if (r === 'fed') pages += 1;
    // 'moved': another feeder booked that page; read the cursor again.
  }
  return { pages, ended: false };
}

/** End the feed (cancelled, or failed) and seal the batch with what it has. */
async function endFeed(deps: CreateBatchDeps, batchId: string, after?: string): Promise<void> {
  if (!(await deps.batches.endFeed(batchId, after))) return;
  if (await deps.batches.seal(batchId)) await scheduleFinalize(deps, batchId);
}

function pageSize(deps: Pick<CreateBatchDeps, 'config'>): number {
  return Math.min(MAX_LIST_PAGE, deps.config.ENQUEUE_PAGE_SIZE);
}

/** A listing started ahead: the page after `after`. */
interface Ahead {
  after: string;
  objects: Promise<ObjectInfo[]>;
}

async function listPage(deps: Pick<CreateBatchDeps, 'storage' | 'config'>, source: S3Location, after: string): Promise<ObjectInfo[]> {
  const it = deps.storage.listPages(source.bucket, source.key, { pageSize: pageSize(deps), ...(after ? { startAfter: after } : {}) })[Symbol.asyncIterator]();
  const first = await it.next();
  await it.return?.();
  return first.done ? [] : first.value;
}

/** One page after cursor `after`: listed, booked with the cursor moved (or 'moved'), enqueued, settled. */
async function feedPage(
  deps: CreateBatchDeps,
  batchId: string,
  feed: Feed,
  after: string,
  listed: Promise<ObjectInfo[]>,
  listAhead: ((a: Ahead) => void) | undefined,
  progress: CreateBatchProgress,
  jobIds: string[],
  opts: Pick<CreateBatchOptions, 'onProgress' | 'returnIdsUpTo' | 'decorate'>,
): Promise<'fed' | 'moved' | 'ended'> {
  const { req, out, source } = feed;
  const objects = await listed;
  if (listAhead && objects.length >= pageSize(deps)) {
    const next = objects[objects.length - 1]!.key;
    const p = listPage(deps, source, next);
    p.catch(() => undefined); // awaited by the next step, or dropped
    listAhead({ after: next, objects: p });
  }
  if (!objects.length) {
    await endFeed(deps, batchId, after);
    return 'ended';
  }
  const outPrefix = asPrefix(out.key);
  const outputs = req.force ? undefined : new ListingCursor(deps.storage, out.bucket, outPrefix);
  const local: CreateBatchProgress = { listed: 0, ignored: 0, added: 0, duplicates: 0, skipped: 0 };
  const { entries, toAdd } = await bookPage(deps, batchId, req, out, objects.map((obj) => ({ obj, listedPrefix: source.key })), outputs, local, jobIds, opts);
  if (req.force) await removeFinished(deps, toAdd.map(jobIdFor));
  const last = objects[objects.length - 1]!.key;
  // Booked before they can run (so no transition is missed), with the cursor, in one step.
  if ((await deps.batches.feedPage(batchId, after, last, entries)) === null) return 'moved';
  await enqueueBooked(deps, batchId, req, toAdd, local);
  await deps.batches.feedSettled(batchId, after);
  for (const k of Object.keys(progress) as Array<keyof CreateBatchProgress>) progress[k] += local[k];
  opts.onProgress?.({ ...progress });
  // A short page is the listing's last: end now rather than list once more to find nothing.
  if (objects.length < pageSize(deps)) {
    await endFeed(deps, batchId, last);
    return 'ended';
  }
  return 'fed';
}

/**
 * A page booked (after `redo.after`, up to `redo.last`) whose enqueue may have been cut short: its
 * jobs the books still hold as queued are enqueued (adding an existing job adds nothing).
 */
async function repairPage(deps: CreateBatchDeps, batchId: string, feed: Feed, redo: { after: string; last: string }): Promise<number> {
  const objects: ObjectInfo[] = [];
  for (let after = redo.after; ; ) {
    const page = await listPage(deps, feed.source, after);
    objects.push(...page.filter((o) => o.key <= redo.last));
    if (!page.length || page[page.length - 1]!.key >= redo.last) break;
    after = page[page.length - 1]!.key;
  }
  // The page's specs as it was booked (no outputs lookup: a file skipped then is not queued in the books).
  const progress: CreateBatchProgress = { listed: 0, ignored: 0, added: 0, duplicates: 0, skipped: 0 };
  const { toAdd } = await bookPage(deps, batchId, feed.req, feed.out, objects.map((obj) => ({ obj, listedPrefix: feed.source.key })), undefined, progress, [], {});
  const states = await Promise.all(toAdd.map((s) => deps.batches.stateOf(batchId, jobIdFor(s))));
  const missing = toAdd.filter((_, i) => states[i] === 'queued');
  if (missing.length) await enqueueBooked(deps, batchId, feed.req, missing, progress);
  await deps.batches.feedSettled(batchId, redo.after);
  return missing.length;
}

/**
 * Spill a batch's finished books: while BOOKS_SPILL_AT completed (or skipped) entries are in Redis,
 * the oldest BOOKS_SPILL_AT of them are written as one JSONL part of its report
 * (`<report>.parts/…`) and then taken out of Redis, all or none (a part whose jobs moved meanwhile
 * is deleted and not used). Returns how many entries left Redis.
 */
export async function spillBatch(deps: Pick<BatchDeps, 'config' | 'storage' | 'batches'>, batchId: string, out: string): Promise<number> {
  const at = deps.config.BOOKS_SPILL_AT;
  if (!at) return 0;
  let moved = 0;
  for (const state of ['completed', 'skipped'] as const) {
    while ((await deps.batches.finishedCount(batchId, state)) >= at) {
      const rows = await deps.batches.finishedPage(batchId, state, at);
      const report = reportLocation(deps.config, out, batchId);
      const partKey = `${report.base}.parts/${state}-${String(Date.now()).padStart(15, '0')}-${randomBytes(4).toString('hex')}.jsonl`;
      const body = rows.map(([jobId, r]) => reportLine(jobId, r ?? { key: jobId, state })).join('\n') + '\n';
      await deps.storage.put(report.bucket, partKey, body, { contentType: 'application/x-ndjson' });
      const n = await deps.batches.spill(batchId, state, partKey, rows.map(([jobId]) => jobId));
      if (!n) {
        await deps.storage.delete(report.bucket, partKey).catch(() => undefined);
        break;
      }
      moved += n;
    }
  }
  return moved;
}

/**
 * One feeder pass (every worker, every FEED_INTERVAL_MS; a fleet-wide lock lets one run at a time):
 * repair pages left half-fed, spill finished books, then top up every drip-fed batch's bucket, the
 * batches by priority (none first, as BullMQ runs them) then age.
 */
export async function feedBatches(deps: FeedDeps): Promise<{ batches: number; pages: number; repaired: number; spilled: number }> {
  const result = { batches: 0, pages: 0, repaired: 0, spilled: 0 };
  if (!(await deps.lock.tryAcquire(FEED_LOCK, Math.max(2000, 5 * deps.config.FEED_INTERVAL_MS)))) return result;
  const feeding: Array<{ id: string; priority: number; createdAt: string }> = [];
  for (const id of await deps.batches.unfinished()) {
    await perBatch(deps, id, async () => {
      const batch = await deps.batches.get(id);
      if (!batch) return;
      result.spilled += await spillBatch(deps, id, batch.out);
      const state = await deps.batches.feedState(id);
      if (!state) return;
      const feed = parseFeedRequest(deps.config, state.request);
      for (const redo of state.redo) result.repaired += await repairPage(deps, id, feed, redo);
      if (state.after !== null) feeding.push({ id, priority: batch.priority ?? 0, createdAt: batch.createdAt });
    });
  }
  feeding.sort((a, b) => a.priority - b.priority || a.createdAt.localeCompare(b.createdAt));
  for (const f of feeding) {
    await perBatch(deps, f.id, async () => {
      const r = await feedBatch(deps, f.id, { maxPages: PAGES_PER_PASS });
      result.batches += 1;
      result.pages += r.pages;
    });
  }
  return result;
}

/**
 * One batch's part of a pass: a failure of storage or Redis is left to the next pass; a batch whose
 * feed can never go on (its stored request no longer valid here, e.g. a bucket taken off
 * S3_ALLOWED_BUCKETS) ends with what it has and says why, as a create call cut short does.
 */
async function perBatch(deps: FeedDeps, batchId: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    const err = e as Error;
    if (err instanceof ScribeError && err.kind === 'unrecoverable') {
      await deps.batches.setFields(batchId, { listError: `${err.code}: ${err.message}` }).catch(() => undefined);
      await endFeed(deps, batchId).catch(() => undefined);
    } else console.error(`[feeder] batch ${batchId}: ${err.message}`);
  }
}
