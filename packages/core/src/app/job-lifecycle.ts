/**
 * A job's life in its batches' books, as the worker reports it: started, handed back, ended. The end
 * of every job is recorded here (jobEnded), whoever saw it.
 */
import type { BatchJobResult } from '../domain/batch';
import { outcomeOfFinishedJob, resultOfEnd, type JobEnd } from '../domain/job-end';
import type { JobSpec } from '../domain/job-spec';
import type { QueuedJob, WebhookEvent } from '../ports/job-queue';
import type { BatchDeps } from './deps';
import { scheduleFinalize } from './finalize-batch';
import { queueWebhook } from './webhooks';
import { admitJob, settleJob, type BudgetDeps, type BudgetRefusal } from './budgets';

export type { JobEnd } from '../domain/job-end';

/** What recording a job's end needs. */
export type JobEndDeps = Pick<BatchDeps, 'config' | 'batches' | 'jobEnds' | 'finalizeQueue' | 'outbox' | 'clock' | 'budgets' | 'prices'>;

/** The batches a job reports to: its own, and those that adopted it (enqueued it again while it existed). */
export async function batchesOf(deps: Pick<BatchDeps, 'batches'>, spec: Pick<JobSpec, 'batchId'>, jobId: string): Promise<string[]> {
  const extra = await deps.batches.jobBatches(jobId);
  return [...new Set([...(spec.batchId ? [spec.batchId] : []), ...extra])];
}

/**
 * Called by the worker when an attempt starts, before any session: `cancelled` if its batch was
 * cancelled, `paused` (with when to look again) if a budget does not admit it (app/budgets.ts);
 * otherwise the job is active in its batches' books.
 */
export async function jobStarted(deps: BudgetDeps, spec: JobSpec, jobId: string): Promise<{ cancelled: boolean; paused?: BudgetRefusal }> {
  if (spec.batchId && (await deps.batches.isCancelled(spec.batchId))) return { cancelled: true };
  const admission = await admitJob(deps, spec, jobId);
  if (!admission.admitted) return { cancelled: false, paused: admission };
  for (const b of await batchesOf(deps, spec, jobId)) {
    await deps.batches.transition(b, jobId, 'active');
    await deps.batches.markStarted(b);
  }
  return { cancelled: false };
}

/** A running job went back to the queue (its worker is shutting down): queued again in the books. */
export async function jobHandedBack(deps: Pick<BatchDeps, 'batches'>, spec: JobSpec, jobId: string): Promise<void> {
  for (const b of await batchesOf(deps, spec, jobId)) await deps.batches.transition(b, jobId, 'queued', undefined, 0, 0, 'start');
}

/**
 * THE one place a job's end is recorded: the processor's outcome (worker.ts), a failure BullMQ
 * decided on its own (the stalled limit: `WORKER_LOST`), a cancel, and the reconciler all come
 * here. The first terminal outcome of the job's life wins (JobEnds); every later report of it maps
 * to the same books entry (audio seconds counted once) and the same webhook delivery ids, so
 * calling this twice — after a crash between its steps, say — repairs instead of duplicating.
 * `first` is true for the one call that recorded the end (metrics count that one).
 */
export async function jobEnded(deps: JobEndDeps, spec: Pick<JobSpec, 'batchId' | 'source' | 'provider' | 'account' | 'model' | 'mode'>, jobId: string, createdAt: number, end: JobEnd): Promise<{ first: boolean; result: BatchJobResult }> {
  const claim = await deps.jobEnds.claim(jobId, createdAt, resultOfEnd(spec.source.key, end));
  const r = claim.outcome;
  // Its budget reservations become what it used (idempotent: only a held reservation counts).
  await settleJob(deps, spec, jobId, r.state === 'completed' ? (r.duration ?? 0) : 0);
  const event: WebhookEvent = r.state === 'completed' ? 'job.completed' : 'job.failed';
  for (const b of await batchesOf(deps, spec, jobId)) {
    const t = await deps.batches.transition(b, jobId, r.state, r, r.duration ?? 0, spec.source.size ?? 0);
    if (deps.config.WEBHOOK_JOB_EVENTS) {
      const batch = await deps.batches.get(b);
      if (batch) await queueWebhook(deps, event, { batchId: b, jobId, ...r }, { batchUrl: batch.webhookUrl, batchId: b, dedupe: `${jobId}|${claim.gen}|${createdAt}` });
    }
    if (t.last) await scheduleFinalize(deps, b);
  }
  if (!spec.batchId && deps.config.WEBHOOK_JOB_EVENTS) await queueWebhook(deps, event, { jobId, ...r }, { dedupe: `${jobId}|${claim.gen}|${createdAt}` });
  return { first: claim.first, result: r };
}

/**
 * A job the queue holds as finished, recorded through jobEnded (idempotent). For failures decided
 * inside BullMQ — the stalled limit — and for the reconciler. Returns whether it was finished.
 */
export async function recordFinishedJob(deps: JobEndDeps, job: QueuedJob): Promise<boolean> {
  const end = outcomeOfFinishedJob(job);
  if (!end || !job.id) return false;
  await jobEnded(deps, job.spec, job.id, job.createdAt, end);
  return true;
}
