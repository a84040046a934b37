/**
 * Batches: one enqueue request (an S3 prefix or a manifest) and the jobs it created, tracked
 * together. Pure types and arithmetic; the Redis side is adapters/redis/batch-store.ts.
 */
import { randomBytes } from 'node:crypto';
import type { BudgetView } from './budget';
import type { PlanLink } from './plan-progress';

/** Where a job of a batch stands, from the batch's point of view. */
export const BATCH_JOB_STATES = ['queued', 'active', 'completed', 'failed', 'cancelled', 'skipped'] as const;
export type BatchJobState = (typeof BATCH_JOB_STATES)[number];
export const TERMINAL_STATES: readonly BatchJobState[] = ['completed', 'failed', 'cancelled', 'skipped'];

export type BatchStatus = 'running' | 'finished' | 'cancelled';

export interface BatchRecord {
  id: string;
  createdAt: string;
  /** When the first of its jobs started running. */
  startedAt?: string;
  finishedAt?: string;
  status: BatchStatus;
  /** True while its source is still being listed and enqueued (the total still grows). */
  listing?: boolean;
  /** Drip-fed: the rest of its source is listed and enqueued as its jobs drain (a durable cursor). */
  feeding?: boolean;
  /** Why listing stopped early (storage failed mid-way): the batch holds only the jobs enqueued before. */
  listError?: string;
  /** `s3://bucket/prefix` or `manifest` */
  source: string;
  out: string;
  provider: string;
  model?: string;
  mode: string;
  priority?: number;
  /** Jobs in the batch (every listed file, including the skipped ones). */
  total: number;
  /** Bytes of all source objects, and of those done: the basis of the audio-seconds estimate. */
  bytesTotal: number;
  bytesDone: number;
  audioSecondsDone: number;
  counts: Record<BatchJobState, number>;
  /**
   * `budget`: a job of the batch was refused by a budget (its own, or its account's of the day), so
   * no new session starts for it; cleared when a job of it is admitted again (`scribe resume`).
   */
  paused?: 'budget';
  pausedReason?: string;
  /** The batch's budget, when it has one: limits and use (read views only). */
  budget?: BudgetView;
  /** S3 URL of the report, once written. */
  report?: string;
  webhookUrl?: string;
  /** The plan it was made from (`scribe enqueue --plan`, or a create request's `plan`): shown beside its progress. */
  plan?: PlanLink;
}

/** What the batch keeps of each finished job (for the report), small on purpose. */
export interface BatchJobResult {
  key: string;
  state: BatchJobState;
  duration?: number;
  requestId?: string;
  outputs?: Record<string, string>;
  errorCode?: string;
  errorMessage?: string;
  /** Completed, but with something to know (`NO_SPEECH`, `TRUNCATED_INPUT`). */
  warnings?: string[];
}

export function newBatchId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  return `b_${stamp}_${randomBytes(4).toString('hex')}`;
}

/**
 * The shape of every id `newBatchId` makes: `b_<yyyymmdd>-<hhmmss>_<8 hex>`. An id from a client is
 * checked against it before any read, so a front end cannot be made to address another key.
 */
export const BATCH_ID_PATTERN = '^b_[0-9]{8}-[0-9]{6}_[0-9a-f]{8}$';
const BATCH_ID_RE = new RegExp(BATCH_ID_PATTERN);

/** Whether `id` has the shape of a batch id (see BATCH_ID_PATTERN). */
export function isBatchId(id: unknown): boolean {
  return typeof id === 'string' && BATCH_ID_RE.test(id);
}

export function doneCount(counts: Record<BatchJobState, number>): number {
  return TERMINAL_STATES.reduce((n, s) => n + counts[s], 0);
}

export interface BatchProgress {
  done: number;
  total: number;
  fraction: number;
  audioSecondsDone: number;
  /** Estimated from bytes: audio seconds per byte so far × all bytes. Exact once the batch is done. */
  audioSecondsTotalEstimate: number | null;
  /** Files per second since the batch started, and the remaining time at that rate. */
  filesPerSecond: number;
  etaSeconds: number | null;
}

export function batchProgress(b: BatchRecord, now = Date.now()): BatchProgress {
  const done = doneCount(b.counts);
  const elapsed = Math.max(0.001, ((b.finishedAt ? Date.parse(b.finishedAt) : now) - Date.parse(b.createdAt)) / 1000);
  const rate = done / elapsed;
  const remaining = b.total - done;
  const estimate = b.status === 'finished' ? b.audioSecondsDone : b.bytesDone > 0 ? (b.audioSecondsDone * b.bytesTotal) / b.bytesDone : null;
  return {
    done,
    total: b.total,
    fraction: b.total ? done / b.total : 1,
    audioSecondsDone: b.audioSecondsDone,
    audioSecondsTotalEstimate: estimate,
    filesPerSecond: rate,
    etaSeconds: remaining === 0 ? 0 : rate > 0 ? remaining / rate : null,
  };
}
