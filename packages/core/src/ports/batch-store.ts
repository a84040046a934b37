/**
 * The books the use cases keep (Redis behind them: adapters/redis/batch-store.ts, job-ends.ts,
 * fleet-lock.ts). Everything a batch knows about its jobs lives behind these ports; no use case
 * builds a key.
 */
import type { BatchJobResult, BatchJobState, BatchRecord } from '../domain/batch';

export type TransitionRule = 'end' | 'start' | 'force';

export interface BatchJobEntry {
  jobId: string;
  key: string;
  bytes: number;
  state?: BatchJobState;
  result?: BatchJobResult;
}

export type BatchCreate = Omit<BatchRecord, 'counts' | 'total' | 'bytesTotal' | 'bytesDone' | 'audioSecondsDone' | 'status' | 'finishedAt' | 'report' | 'feeding' | 'paused' | 'pausedReason' | 'budget'> & {
  /** A drip-fed batch: its request (JSON, validated again by whoever feeds it), fed from an empty cursor. */
  feed?: string;
};

/** A drip-fed batch's durable cursor (app/feed-batch.ts). */
export interface FeedState {
  /** The batch's request, JSON, as stored (not yet validated). */
  request: string;
  /** The last key fed ('' before the first page; null once the listing has ended or the batch was cancelled). */
  after: string | null;
  /** Positions handed out so far (every booked job has one below it). */
  positions: number;
  /** Pages booked whose jobs may not be in the queue yet: listed after `after`, up to and including `last`. */
  redo: Array<{ after: string; last: string }>;
}

export interface TransitionResult {
  /** The books changed (false: the job was already there, or the rule refused the move). */
  applied: boolean;
  /** This move made every job of a sealed batch terminal: the caller must schedule its finalisation. */
  last: boolean;
  /** Where the books have the job now (null: not in them, e.g. spilled to a report part), and its result there. */
  state: BatchJobState | null;
  result: BatchJobResult | null;
}

/** A batch's record, its jobs by state, their results, and which batches a job belongs to. */
export interface BatchStore {
  create(b: BatchCreate): Promise<void>;
  get(id: string): Promise<BatchRecord | null>;
  setFields(id: string, fields: Partial<Record<'status' | 'finishedAt' | 'report' | 'listError', string>>): Promise<void>;
  /** Add a page of jobs (idempotent per job id). */
  addJobs(id: string, entries: BatchJobEntry[]): Promise<void>;
  /** No more jobs will be added: the batch may finish. True if it already has (all terminal). */
  seal(id: string): Promise<boolean>;
  transition(id: string, jobId: string, state: BatchJobState, result?: BatchJobResult, audioSeconds?: number, bytes?: number, rule?: TransitionRule): Promise<TransitionResult>;
  markStarted(id: string, at?: string): Promise<void>;
  /** Mark the batch paused by a budget (with why), or clear the mark (null). */
  setPaused(id: string, pause: { paused: 'budget'; reason: string } | null): Promise<void>;
  /** Where the books have a job now (null: not in this batch's books). */
  stateOf(id: string, jobId: string): Promise<BatchJobState | null>;
  isCancelled(id: string): Promise<boolean>;
  /** Open a finished batch again (redrive); returns the new run number. */
  reopen(id: string): Promise<number>;
  /** How many times the batch was opened again (0 for its first run). */
  runs(id: string): Promise<number>;
  /** Batches that may need the reconciler (running, or done without a finish time). */
  unfinished(limit?: number): Promise<string[]>;
  needsFinalize(id: string): Promise<boolean>;
  doneSeenFor(id: string): Promise<number>;
  claimFinalize(id: string): Promise<void>;
  /** Job ids in one state in batch order; with `below`, only those at positions under it. */
  jobIds(id: string, state: BatchJobState, offset?: number, limit?: number, below?: number): Promise<string[]>;
  /** The feed of a drip-fed batch (null: a batch that was never drip-fed). */
  feedState(id: string): Promise<FeedState | null>;
  /**
   * Book one listed page of a drip-fed batch and move its cursor from `after` to `last`, if the
   * cursor is still at `after` (else null: another feeder booked it). The page stays in `redo` until
   * feedSettled. Returns how many jobs were booked.
   */
  feedPage(id: string, after: string, last: string, entries: BatchJobEntry[]): Promise<number | null>;
  /** The page booked after `after` has its jobs in the queue. */
  feedSettled(id: string, after: string): Promise<void>;
  /** End the feed: its listing is exhausted at cursor `after`, or (no `after`) the batch was cancelled. True if this call ended it. */
  endFeed(id: string, after?: string): Promise<boolean>;
  /** The oldest `limit` entries of a finished state, with their results (what a spill takes). */
  finishedPage(id: string, state: 'completed' | 'skipped', limit: number): Promise<Array<[string, BatchJobResult | null]>>;
  finishedCount(id: string, state: 'completed' | 'skipped'): Promise<number>;
  /**
   * Take these finished jobs out of Redis, their results being in the report part at `partKey`
   * (recorded in order): all or none (0) if any moved meanwhile. They still count in `counts`.
   */
  spill(id: string, state: 'completed' | 'skipped', partKey: string, jobIds: string[]): Promise<number>;
  /** The report parts spilled so far, in order. */
  spillParts(id: string): Promise<string[]>;
  jobsPage(id: string, offset?: number, limit?: number, state?: BatchJobState): Promise<Array<{ jobId: string; state: BatchJobState; position: number }>>;
  result(id: string, jobId: string): Promise<BatchJobResult | null>;
  results(id: string): AsyncIterable<Array<[string, BatchJobResult]>>;
  recent(limit?: number, offset?: number): Promise<string[]>;
  count(): Promise<number>;
  /** A job enqueued by an earlier batch also belongs to this one (it reports to both). */
  addJobBatch(jobId: string, batchId: string): Promise<void>;
  /** The batches a job was adopted by (besides the one in its spec). */
  jobBatches(jobId: string): Promise<string[]>;
  /** The reconciler's walk through a batch's queued jobs: where the next sweep starts. */
  reconcileCursor(batchId: string): Promise<number>;
  setReconcileCursor(batchId: string, position: number): Promise<void>;
}

export interface JobEndClaim {
  /** This call recorded the job's end (false: an earlier report won, and `outcome` is that one). */
  first: boolean;
  outcome: BatchJobResult;
  /** The redrive generation of the job's life (part of its webhook delivery ids). */
  gen: number;
}

/** The first terminal outcome of each life of a job (see adapters/redis/job-ends.ts). */
export interface JobEndStore {
  claim(jobId: string, createdAt: number, outcome: BatchJobResult): Promise<JobEndClaim>;
  get(jobId: string): Promise<BatchJobResult | null>;
  /** The job runs again (redrive): forget its end, start a new generation. */
  reopen(jobId: string): Promise<void>;
}

/** A fleet-wide mutual exclusion with a lease (one reconciler sweep at a time). */
export interface FleetLock {
  /** True if this caller holds the lock named `name` now, for `ttlMs` (never released early). */
  tryAcquire(name: string, ttlMs: number): Promise<boolean>;
}
