/**
 * The job queue as the use cases see it (BullMQ behind it: adapters/bullmq/job-queue.ts). Jobs are
 * read back as typed views, never as BullMQ objects, so no use case casts a queue job by hand.
 */
import type { JobResult } from '../domain/job-result';
import type { JobSpec } from '../domain/job-spec';

/** A job's state in the queue (BullMQ's names; `unknown` when it is not there any more). */
export type QueueJobState = 'waiting' | 'prioritized' | 'delayed' | 'waiting-children' | 'active' | 'completed' | 'failed' | 'unknown';

/** One job as the queue holds it. */
export interface QueuedJob {
  id: string;
  /** The spec as enqueued (parsed again by whoever relies on more than its fields' presence). */
  spec: JobSpec;
  state: QueueJobState;
  attemptsMade: number;
  /** Times a worker holding it was lost (BullMQ's stalled counter). */
  stalls: number;
  progress: unknown;
  /** Enqueue time, ms since the epoch (with the id, it names one life of the job). */
  createdAt: number;
  finishedAt?: number;
  /** A completed job's result. */
  result?: JobResult;
  /** A failed job's reason, `CODE: message`. */
  failedReason?: string;
}

export interface AddJobsResult {
  added: number;
  duplicates: number;
  /** Ids that were already in the queue (added by an earlier batch): not added again. */
  duplicateIds: string[];
}

export interface JobQueue {
  /** Add jobs (ids are deterministic: an existing one is not added again). */
  add(specs: JobSpec[], opts?: { priority?: number }): Promise<AddJobsResult>;
  get(id: string): Promise<QueuedJob | undefined>;
  /**
   * Remove a job that is not running: `removed`; `active` when a worker holds it (it cannot be
   * removed, abort it instead); `missing` when it is not in the queue.
   */
  remove(id: string): Promise<'removed' | 'active' | 'missing'>;
  /** Abort a running job wherever it runs (a broadcast every worker listens to). */
  abortRunning(id: string): Promise<void>;
  /** A failed job back to waiting, its attempts and stalls counted from zero again. */
  retry(id: string): Promise<void>;
  /** Run a delayed job now (a batch resumed after its budget paused it). False if it was not delayed. */
  promote(id: string): Promise<boolean>;
  /**
   * The cap bucket a job with this routing runs in: how many jobs its queue holds that have not
   * finished (waiting, prioritized, delayed, active), and the most a drip feed lets it hold (BACKLOG_PER_BUCKET).
   */
  backlog(routing: Pick<JobSpec, 'provider' | 'account' | 'model' | 'mode'>): Promise<{ bucket: string; pending: number; window: number }>;
}

/** The small queue of batch finalisations: one per run of a batch (adding it twice adds nothing). */
export interface FinalizeQueue {
  scheduleFinalize(batchId: string, run: number): Promise<void>;
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

/** Webhook deliveries waiting to be sent (retried with backoff by the worker that sends them). */
export interface WebhookOutbox {
  /** Queue one delivery under its id (queuing the same id again adds nothing); indexed under `batchId`. */
  enqueue(d: { id: string; event: WebhookEvent; url: string; body: unknown; batchId?: string }): Promise<void>;
  /** A batch's deliveries, newest first. */
  deliveries(batchId: string, offset: number, limit: number): Promise<{ total: number; deliveries: WebhookDelivery[] }>;
}
