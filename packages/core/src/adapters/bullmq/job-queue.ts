import type { Job } from 'bullmq';
import { backlogWindow } from '../../domain/caps';
import { JobNotFoundError } from '../../domain/errors';
import type { JobResult } from '../../domain/job-result';
import type { JobSpec } from '../../domain/job-spec';
import type { AddJobsResult, JobQueue, QueuedJob, QueueJobState } from '../../ports/job-queue';
import { bullmqJobKey, RedisKeys } from '../redis/keys';
import type { FleetQueues } from './fleet-queues';

/**
 * The one reading of a BullMQ job as the use cases see it (ports/job-queue.ts QueuedJob): its state
 * (one round trip), spec, attempts and stalls, result or failed reason. The worker maps the job of
 * BullMQ's `failed` event with it too.
 */
export async function queuedJobOf(job: Job<JobSpec, JobResult>): Promise<QueuedJob> {
  const state = (await job.getState()) as QueueJobState;
  return {
    id: job.id ?? '',
    spec: job.data,
    state,
    attemptsMade: job.attemptsMade,
    stalls: job.stalledCounter ?? 0,
    progress: job.progress,
    createdAt: job.timestamp,
    ...(job.finishedOn ? { finishedAt: job.finishedOn } : {}),
    ...(job.returnvalue ? { result: job.returnvalue } : {}),
    ...(job.failedReason ? { failedReason: job.failedReason } : {}),
  };
}

/**
 * The JobQueue port over the cap-bucket queues (FleetQueues): a job is found by id in whichever
 * bucket queue holds it. Cancelling a running job is a broadcast on the cancel channel
 * (`RedisKeys.cancelChannel`), which every worker subscribes to and aborts the job if it runs it.
 */
export class BullmqJobQueue implements JobQueue {
  readonly cancelChannel: string;

  constructor(private readonly fleet: FleetQueues) {
    this.cancelChannel = RedisKeys.forQueue(fleet.config).cancelChannel();
  }

  async add(specs: JobSpec[], opts: { priority?: number } = {}): Promise<AddJobsResult> {
    const res = await this.fleet.add(specs, opts.priority !== undefined ? { priority: opts.priority } : {});
    return { added: res.added, duplicates: res.duplicates, duplicateIds: res.duplicateIds };
  }

  async get(id: string): Promise<QueuedJob | undefined> {
    const job = await this.fleet.getJob(id);
    return job ? queuedJobOf(job) : undefined;
  }

  async remove(id: string): Promise<'removed' | 'active' | 'missing'> {
    const job = await this.fleet.getJob(id);
    if (!job) return 'missing';
    try {
      await job.remove();
    } catch (e) {
      // A worker took it (BullMQ refuses to remove a locked job): the caller aborts it there.
      if ((await job.getState()) !== 'active') throw e;
      return 'active';
    }
    return 'removed';
  }

  async abortRunning(id: string): Promise<void> {
    await this.fleet.redis.publish(this.cancelChannel, id);
  }

  async backlog(routing: Pick<JobSpec, 'provider' | 'account' | 'model' | 'mode'>): Promise<{ bucket: string; pending: number; window: number }> {
    const b = this.fleet.bucketOf(routing);
    const pending = await this.fleet.queue(b.bucket).getJobCountByTypes('waiting', 'prioritized', 'delayed', 'waiting-children', 'active');
    return { bucket: b.key, pending, window: backlogWindow(this.fleet.config.BACKLOG_PER_BUCKET, b.activeLimit) };
  }

  async promote(id: string): Promise<boolean> {
    const job = await this.fleet.getJob(id);
    if (!job) return false;
    try {
      await job.promote();
      return true;
    } catch {
      // Not delayed (any more): waiting, taken by a worker meanwhile, or finished.
      return false;
    }
  }

  async retry(id: string): Promise<void> {
    const job = await this.fleet.getJob(id);
    if (!job) throw new JobNotFoundError(`job ${id} not found`);
    // Attempts start again, stalls included (BullMQ keeps its stall counter across a retry).
    await this.fleet.redis.hset(bullmqJobKey(job.queueQualifiedName, id), 'stc', 0);
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
  }
}
