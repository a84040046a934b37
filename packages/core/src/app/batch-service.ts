/**
 * Batches and job operations, shared by the CLI, the HTTP API and the workers: create a batch from a
 * prefix or a manifest (skipping files whose outputs exist), follow its jobs, cancel, redrive,
 * finalise it with a report in S3, and queue signed webhooks. A facade: it holds the injected ports
 * (app/deps.ts) and each method is one use case of its own file; built over Redis and BullMQ by
 * adapters/bullmq/open-services.ts.
 */
import type { BatchJobResult, BatchJobState, BatchProgress, BatchRecord } from '../domain/batch';
import type { JobEnd } from '../domain/job-end';
import type { JobSpec } from '../domain/job-spec';
import type { S3Location } from '../domain/s3-url';
import type { BatchStore } from '../ports/batch-store';
import type { QueuedJob, WebhookDelivery, WebhookEvent } from '../ports/job-queue';
import { createBatch, type CreateBatchOptions, type CreateBatchResult } from './create-batch';
import type { BatchDeps } from './deps';
import { feedBatches } from './feed-batch';
import { finalizeBatch, scheduleFinalize } from './finalize-batch';
import { jobEnded, jobHandedBack, jobStarted, recordFinishedJob } from './job-lifecycle';
import { cancelBatch, cancelJob, getBatch, getJob, listBatchJobs, redriveBatch, redriveJob, type JobView } from './operations';
import { reconcile } from './reconcile';
import { resumeBatch, type BudgetRefusal, type ResumeRequest } from './budgets';
import { validateCreateBatch, type CreateBatchRequest } from './validate';
import { queueWebhook, webhookDeliveries } from './webhooks';

export type { CreateBatchOptions, CreateBatchProgress, CreateBatchResult } from './create-batch';
export type { BatchDeps, WallClock } from './deps';
export type { JobEnd } from '../domain/job-end';
export type { JobView } from './operations';
export type { CreateBatchRequest } from './validate';
export type { WebhookDelivery, WebhookEvent } from '../ports/job-queue';

export class BatchService {
  /** The books, for the read views of the front ends (recent batches, counts, results). */
  readonly batches: BatchStore;

  constructor(private readonly deps: BatchDeps) {
    this.batches = deps.batches;
  }

  // ---- creating (app/validate.ts, app/create-batch.ts) -------------------------------------------

  /** Check everything about the request that can be checked before touching storage. */
  validate(req: CreateBatchRequest): { out: S3Location; source?: S3Location } {
    return validateCreateBatch(this.deps.config, req);
  }

  /** Create a batch and enqueue its jobs page by page (see createBatch). */
  create(req: CreateBatchRequest, opts: CreateBatchOptions = {}): Promise<CreateBatchResult> {
    return createBatch(this.deps, req, opts);
  }

  // ---- worker hooks (app/job-lifecycle.ts, app/reconcile.ts, app/finalize-batch.ts) ----------------

  /** Called by the worker when an attempt starts; `cancelled` if its batch was cancelled, `paused` if a budget refused it. */
  jobStarted(spec: JobSpec, jobId: string): Promise<{ cancelled: boolean; paused?: BudgetRefusal }> {
    return jobStarted(this.deps, spec, jobId);
  }

  /** A running job went back to the queue (its worker is shutting down): queued again in the books. */
  jobHandedBack(spec: JobSpec, jobId: string): Promise<void> {
    return jobHandedBack(this.deps, spec, jobId);
  }

  /** THE one place a job's end is recorded (see jobEnded in app/job-lifecycle.ts). */
  jobEnded(spec: Pick<JobSpec, 'batchId' | 'source' | 'provider' | 'account' | 'model' | 'mode'>, jobId: string, createdAt: number, end: JobEnd): Promise<{ first: boolean; result: BatchJobResult }> {
    return jobEnded(this.deps, spec, jobId, createdAt, end);
  }

  /** A job the queue holds as finished, recorded through jobEnded (idempotent); whether it was finished. */
  recordFinishedJob(job: QueuedJob): Promise<boolean> {
    return recordFinishedJob(this.deps, job);
  }

  /** One reconciler sweep (see reconcile in app/reconcile.ts). */
  reconcile(opts: { queuedPerBatch?: number } = {}): Promise<{ batches: number; recorded: number; finalised: number }> {
    return reconcile(this.deps, opts);
  }

  /** One feeder pass: top up drip-fed batches, repair half-fed pages, spill finished books (app/feed-batch.ts). */
  feed(): Promise<{ batches: number; pages: number; repaired: number; spilled: number }> {
    return feedBatches(this.deps);
  }

  scheduleFinalize(batchId: string): Promise<void> {
    return scheduleFinalize(this.deps, batchId);
  }

  /** Write the report and summary to S3, mark the batch finished, notify. Idempotent. */
  finalize(batchId: string): Promise<BatchRecord> {
    return finalizeBatch(this.deps, batchId);
  }

  // ---- reading, cancel and redrive (app/operations.ts) -------------------------------------------

  getBatch(id: string): Promise<{ batch: BatchRecord; progress: BatchProgress }> {
    return getBatch(this.deps, id);
  }

  listBatchJobs(id: string, opts: { state?: BatchJobState; offset?: number; limit?: number } = {}) {
    return listBatchJobs(this.deps, id, opts);
  }

  getJob(id: string): Promise<JobView> {
    return getJob(this.deps, id);
  }

  /** Cancel one job: removed if not started, aborted (→ JOB_CANCELLED) on its worker if running. */
  cancelJob(id: string): Promise<{ id: string; state: 'cancelled' | 'cancelling' }> {
    return cancelJob(this.deps, id);
  }

  cancelBatch(id: string): Promise<{ cancelled: number; cancelling: number }> {
    return cancelBatch(this.deps, id);
  }

  /** Put a failed job back in the queue (attempts start again). */
  redriveJob(id: string): Promise<{ id: string; state: string }> {
    return redriveJob(this.deps, id);
  }

  redriveBatch(id: string): Promise<{ redriven: number }> {
    return redriveBatch(this.deps, id);
  }

  /** Resume a batch paused by its budget, its limits raised or removed (app/budgets.ts). */
  resumeBatch(id: string, req: ResumeRequest): Promise<{ promoted: number }> {
    return resumeBatch(this.deps, id, req);
  }

  // ---- webhooks (app/webhooks.ts) ----------------------------------------------------------------

  /** Queue one delivery per configured URL (see queueWebhook in app/webhooks.ts). */
  queueWebhook(event: WebhookEvent, payload: Record<string, unknown>, opts: { batchUrl?: string | undefined; batchId?: string; dedupe: string }): Promise<void> {
    return queueWebhook(this.deps, event, payload, opts);
  }

  /** Deliveries of a batch's webhooks, newest first. */
  webhookDeliveries(batchId: string, opts: { offset?: number; limit?: number } = {}): Promise<{ total: number; deliveries: WebhookDelivery[] }> {
    return webhookDeliveries(this.deps, batchId, opts);
  }
}
