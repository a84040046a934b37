/**
 * How a job ended, and what the books keep of it. Pure: the queue's view of a finished job (state,
 * result, failed reason, stalls) in, the end out; recorded by app/job-lifecycle.ts (jobEnded).
 */
import type { BatchJobResult } from './batch';
import { parseFailedReason } from './errors';
import type { JobResult } from './job-result';

/** How a job ended, as the processor or BullMQ says it: a result, or an error with a stable code. */
export type JobEnd = { result: JobResult; error?: undefined; warnings?: string[] } | { result?: undefined; error: { code: string; message: string } };

/** What outcomeOfFinishedJob reads of a queued job (ports/job-queue.ts QueuedJob has all of it). */
export interface FinishedJobFacts {
  /** The queue's state of the job (`completed`, `failed`, or any other while it is not finished). */
  state: string;
  /** A completed job's result. */
  result?: JobResult;
  /** A failed job's reason, `CODE: message`. */
  failedReason?: string;
  /** Times a worker holding it was lost. */
  stalls: number;
}

/** BullMQ's own failure messages, given the stable codes they mean here. */
const BULLMQ_FAILURES: Array<[RegExp, string]> = [
  [/stalled more than allowable limit/, 'WORKER_LOST'],
  [/started more than allowable limit/, 'WORKER_LOST'],
];

/** The end of a job the queue holds as finished (completed, or failed for good), or null while it is not. */
export function outcomeOfFinishedJob(job: FinishedJobFacts): JobEnd | null {
  if (job.state === 'completed') return job.result ? { result: job.result } : { error: { code: 'INTERNAL', message: 'completed without a result' } };
  if (job.state !== 'failed') return null;
  const reason = job.failedReason ?? '';
  const known = BULLMQ_FAILURES.find(([re]) => re.test(reason));
  if (known) return { error: { code: known[1], message: `the job's worker was lost (${job.stalls} stall(s)): ${reason}` } };
  return { error: parseFailedReason(reason) ?? { code: 'INTERNAL', message: 'failed without a reason' } };
}

/** The books' compact result of an end (a `JOB_CANCELLED` error is `cancelled`, any other `failed`). */
export function resultOfEnd(key: string, end: JobEnd): BatchJobResult {
  if (end.result) {
    const warnings = end.result.warnings ?? [];
    return { key, state: 'completed', duration: end.result.duration, requestId: end.result.requestId, outputs: end.result.outputs, ...(warnings.length ? { warnings } : {}) };
  }
  return { key, state: end.error.code === 'JOB_CANCELLED' ? 'cancelled' : 'failed', errorCode: end.error.code, errorMessage: end.error.message };
}
