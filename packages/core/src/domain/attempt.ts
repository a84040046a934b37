import type { ScribeError } from './errors';

/**
 * How an attempt that did not complete ends: the one decision the worker's BullMQ glue acts on, and
 * the attempt span, the metrics and the batch books record. Pure: the glue gathers the facts (the
 * typed error, attempts spent, the job's reschedule counters) and carries out the answer.
 *
 * - `rescheduled`: back to `delayed` without spending an attempt: a rate limit (at most
 *   `maxRateLimitDelays` times), storage away (for `storageRetryMs` from its first failure), a
 *   worker shutting down handing the job back, or a budget that does not admit it (for as long as
 *   its batch stays paused: a pause, not a retry loop; resuming the batch promotes it).
 * - `failed`: the job's last word: an unrecoverable error, or a failure on its last attempt
 *   (stalls count as spent attempts).
 * - `retrying`: BullMQ retries it with backoff.
 */
export type AttemptOutcome = 'completed' | 'failed' | 'retrying' | 'rescheduled';
export type RescheduleReason = 'RATE_LIMITED' | 'STORAGE_UNAVAILABLE' | 'HANDED_BACK' | 'BUDGET_PAUSED';

export type AttemptDecision =
  | { outcome: 'rescheduled'; reason: RescheduleReason; code?: string; delayMs: number; progress: Record<string, number> }
  | { outcome: 'failed'; code: string }
  | { outcome: 'retrying'; code: string };

/** The reschedule counters an attempt keeps in the job's progress (they survive attempts). */
export interface AttemptProgress {
  rateLimitDelays?: number;
  storageDownSince?: number;
}

export interface FailedAttempt {
  error: ScribeError;
  /** Attempts spent before this one (failed attempts + stalls). */
  spent: number;
  attempts: number;
  progress: AttemptProgress;
  /** Whether the job can be moved back to delayed (the attempt holds its lock token). */
  canReschedule: boolean;
  /** The worker is shutting down and hands the job back. */
  handBack?: boolean;
  now: number;
  storageRetryMs: number;
  maxRateLimitDelays: number;
  random?: () => number;
}

export function decideFailedAttempt(a: FailedAttempt): AttemptDecision {
  const { error: err, progress } = a;
  const random = a.random ?? Math.random;
  if (a.handBack && a.canReschedule) return { outcome: 'rescheduled', reason: 'HANDED_BACK', delayMs: 0, progress: {} };
  // Refused by a budget before any session: no attempt spent, looked at again later (or on resume).
  if (err.code === 'BUDGET_PAUSED' && a.canReschedule) return { outcome: 'rescheduled', reason: 'BUDGET_PAUSED', code: err.code, delayMs: err.retryAfterMs ?? 300_000, progress: {} };
  // Storage away (an S3 outage): wait it out without spending attempts, for storageRetryMs from the
  // first such failure; past that it is an ordinary transient failure.
  if (err.code === 'STORAGE_UNAVAILABLE' && a.canReschedule) {
    const since = progress.storageDownSince ?? a.now;
    if (a.now - since < a.storageRetryMs) {
      const n = Math.round((a.now - since) / 1000);
      return { outcome: 'rescheduled', reason: 'STORAGE_UNAVAILABLE', code: err.code, delayMs: Math.min(15_000, 1000 + n * 500), progress: { storageDownSince: since } };
    }
  }
  // A rate limit goes back to `delayed` without spending an attempt, while re-schedules remain.
  const delays = Number(progress.rateLimitDelays ?? 0) + 1;
  if (err.kind === 'rate_limit' && delays <= a.maxRateLimitDelays && a.canReschedule) {
    return { outcome: 'rescheduled', reason: 'RATE_LIMITED', code: err.code, delayMs: Math.round((err.retryAfterMs ?? 5000) * (0.75 + random() * 0.5)), progress: { rateLimitDelays: delays } };
  }
  const final = err.kind === 'unrecoverable' || a.spent + 1 >= a.attempts;
  return { outcome: final ? 'failed' : 'retrying', code: err.code };
}

/** How one attempt of a job ended, as the worker reports it (to metrics and to the fleet history). */
export type JobOutcomeKind = 'completed' | 'failed' | 'cancelled' | 'retry' | 'rate_limited';

export interface JobOutcome {
  /** Cap bucket key (`provider:account:class:mode`), or `unknown` for a job whose spec does not parse. */
  bucket: string;
  /** completed / failed / cancelled end the job; retry (transient error) and rate_limited (re-scheduled) do not. */
  outcome: JobOutcomeKind;
  /** The error's stable code (every outcome but completed). */
  code?: string;
  /** Seconds of audio transcribed (completed). */
  audioSeconds?: number;
}
