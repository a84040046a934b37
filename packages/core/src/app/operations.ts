/**
 * What an operator does to batches and jobs (CLI, HTTP API): read them, cancel, redrive. The state
 * rules live here, not in the front ends: cancelling a finished job or batch, and redriving what has
 * not failed, are INVALID_STATE (the CLI maps it to exit 7, the API to HTTP 409, by its code).
 * Every id is checked for its shape first (validate.ts assertJobId / assertBatchId → INVALID_REQUEST),
 * before the queue or the books are touched: BullMQ keeps its own keys (`meta`, `events`, …) beside
 * the jobs, so a job id taken as given could read or delete one of them.
 */
import { batchProgress, type BatchJobState, type BatchProgress, type BatchRecord } from '../domain/batch';
import { BatchNotFoundError, InvalidStateError, JobNotFoundError, parseFailedReason } from '../domain/errors';
import { formatS3Url } from '../domain/s3-url';
import { budgetView, hasLimits } from '../domain/budget';
import { nowMs, type BatchDeps } from './deps';
import { scheduleFinalize } from './finalize-batch';
import { batchesOf, jobEnded, type JobEndDeps } from './job-lifecycle';
import { assertBatchId, assertJobId, batchJobsPaging } from './validate';

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

/** What cancelling and redriving need: the queue, the books and everything recording an end needs. */
export type OperationDeps = JobEndDeps & Pick<BatchDeps, 'queue'>;

// ---- reading ----------------------------------------------------------------------------------

export async function getBatch(deps: Pick<BatchDeps, 'batches' | 'clock' | 'budgets'>, id: string): Promise<{ batch: BatchRecord; progress: BatchProgress }> {
  assertBatchId(id);
  const batch = await deps.batches.get(id);
  if (!batch) throw new BatchNotFoundError(`batch ${id} not found`);
  // Its budget, when it has one: limits, spent and running (reserved) use.
  const budget = await deps.budgets?.get(id);
  if (budget && hasLimits(budget.limits)) batch.budget = budgetView(budget.limits, budget.book);
  return { batch, progress: batchProgress(batch, nowMs(deps)) };
}

export async function listBatchJobs(deps: Pick<BatchDeps, 'batches'>, id: string, opts: { state?: BatchJobState; offset?: number; limit?: number } = {}) {
  assertBatchId(id);
  if (!(await deps.batches.get(id))) throw new BatchNotFoundError(`batch ${id} not found`);
  const { offset, limit } = batchJobsPaging(opts);
  const page = await deps.batches.jobsPage(id, offset, limit, opts.state);
  return Promise.all(page.map(async (p) => ({ ...p, result: await deps.batches.result(id, p.jobId) })));
}

export async function getJob(deps: Pick<BatchDeps, 'queue'>, id: string): Promise<JobView> {
  assertJobId(id);
  const job = await deps.queue.get(id);
  if (!job) throw new JobNotFoundError(`job ${id} not found (it may have been removed after the retention period)`);
  const { state, spec } = job;
  const view: JobView = {
    id,
    state,
    source: formatS3Url({ bucket: spec.source.bucket, key: spec.source.key }),
    provider: spec.provider,
    model: spec.model,
    mode: spec.mode,
    attemptsMade: job.attemptsMade,
    progress: job.progress,
    createdAt: new Date(job.createdAt).toISOString(),
  };
  if (spec.batchId) view.batchId = spec.batchId;
  if (job.finishedAt) view.finishedAt = new Date(job.finishedAt).toISOString();
  if (state === 'completed' && job.result) Object.assign(view, { outputs: job.result.outputs, duration: job.result.duration, requestId: job.result.requestId });
  if (state === 'failed') view.error = parseFailedReason(job.failedReason) ?? { code: 'INTERNAL', message: job.failedReason ?? '' };
  return view;
}

// ---- cancel and redrive -----------------------------------------------------------------------

/** Cancel one job: removed if not started, aborted (→ JOB_CANCELLED) on its worker if running. */
export async function cancelJob(deps: OperationDeps, id: string): Promise<{ id: string; state: 'cancelled' | 'cancelling' }> {
  const r = await cancelOne(deps, id);
  if (r.state === 'completed' || r.state === 'failed') throw new InvalidStateError(`job ${id} already ${r.state}: nothing to cancel`);
  return { id, state: r.state };
}

/** Cancel one job, whatever its state: a finished one is left as it is (and said so). */
export async function cancelOne(deps: OperationDeps, id: string): Promise<{ id: string; state: 'cancelled' | 'cancelling' | 'completed' | 'failed' }> {
  assertJobId(id);
  const job = await deps.queue.get(id);
  if (!job) throw new JobNotFoundError(`job ${id} not found`);
  const { state } = job;
  if (state === 'completed' || state === 'failed') return { id, state };
  if (state === 'active') {
    await deps.queue.abortRunning(id);
    return { id, state: 'cancelling' };
  }
  if ((await deps.queue.remove(id)) === 'active') {
    // A worker took it between the two calls (the queue refuses to remove a running job): abort it there.
    await deps.queue.abortRunning(id);
    return { id, state: 'cancelling' };
  }
  await jobEnded(deps, job.spec, id, job.createdAt, { error: { code: 'JOB_CANCELLED', message: 'cancelled before it started' } });
  return { id, state: 'cancelled' };
}

export async function cancelBatch(deps: OperationDeps, id: string): Promise<{ cancelled: number; cancelling: number }> {
  assertBatchId(id);
  const batch = await deps.batches.get(id);
  if (!batch) throw new BatchNotFoundError(`batch ${id} not found`);
  if (batch.finishedAt) throw new InvalidStateError(`batch ${id} already ${batch.status}: nothing to cancel`);
  await deps.batches.setFields(id, { status: 'cancelled' });
  // A drip-fed batch stops feeding: it ends with the jobs it has (files never fed are not in it).
  if (batch.feeding && (await deps.batches.endFeed(id)) && (await deps.batches.seal(id))) await scheduleFinalize(deps, id);
  let cancelled = 0;
  let cancelling = 0;
  for (const state of ['queued', 'active'] as const) {
    for (;;) {
      const ids = await deps.batches.jobIds(id, state, 0, 500);
      const todo = ids.filter((x) => x);
      if (!todo.length) break;
      let progressed = false;
      for (const jobId of todo) {
        const r = await cancelOne(deps, jobId).catch(() => ({ id: jobId, state: 'gone' as const }));
        if (r.state === 'cancelled' || r.state === 'gone') {
          cancelled += 1;
          progressed = true;
          if (r.state === 'gone') {
            const t = await deps.batches.transition(id, jobId, 'cancelled', { key: jobId, state: 'cancelled', errorCode: 'JOB_CANCELLED', errorMessage: 'job no longer exists' });
            if (t.last) await scheduleFinalize(deps, id);
          }
        } else if (r.state === 'cancelling') cancelling += 1;
        else progressed = true; // finished meanwhile: its end is (or will be) in the books
      }
      if (!progressed || state === 'active') break;
    }
  }
  // Nothing was left to end (every job had finished): the batch finishes now, as cancelled.
  if (await deps.batches.needsFinalize(id)) await scheduleFinalize(deps, id);
  return { cancelled, cancelling };
}

/** Put a failed job back in the queue (attempts start again). */
export async function redriveJob(deps: OperationDeps, id: string): Promise<{ id: string; state: string }> {
  assertJobId(id);
  const job = await deps.queue.get(id);
  if (!job) throw new JobNotFoundError(`job ${id} not found`);
  if (job.state !== 'failed') throw new InvalidStateError(`job ${id} is ${job.state}: only failed jobs can be redriven`);
  await deps.jobEnds.reopen(id);
  for (const b of await batchesOf(deps, job.spec, id)) {
    // Open again: it finalises (a new report) when the redriven jobs end.
    await deps.batches.reopen(b);
    await deps.batches.transition(b, id, 'queued', undefined, 0, 0, 'force');
  }
  // Attempts start again, stalls included (the queue's retry resets BullMQ's stall counter too).
  await deps.queue.retry(id);
  return { id, state: 'waiting' };
}

export async function redriveBatch(deps: OperationDeps, id: string): Promise<{ redriven: number }> {
  assertBatchId(id);
  if (!(await deps.batches.get(id))) throw new BatchNotFoundError(`batch ${id} not found`);
  let redriven = 0;
  let seen = 0;
  for (;;) {
    const ids = await deps.batches.jobIds(id, 'failed', 0, 500);
    if (!ids.length) break;
    seen += ids.length;
    let progressed = false;
    for (const jobId of ids) {
      await redriveJob(deps, jobId).then(
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
