import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../../domain/config';
import { bullmqQueueKey } from '../redis/keys';
import { defineScript } from '../redis/scripts';

/**
 * Job locks across a Redis outage. BullMQ's locks are keys with a TTL (WORKER_LOCK_MS); Redis
 * restarted after a longer outage has let them all expire, and the next stalled check would hand
 * every running job to another worker — the same file transcribed twice, outputs written twice. So:
 *
 * 1. On reconnect, each worker re-asserts the locks of the jobs it is still running (one script per
 *    job: renew its own lock, or re-take a lock that expired while the job is still in `active`). A
 *    job whose lock another worker holds, or that left `active`, is reported lost: the caller stops
 *    working on it.
 * 2. The stalled check (BullMQ's `moveStalledJobsToWait`) runs only once Redis has been up for
 *    `grace` ms, so every surviving worker has re-asserted its locks first. A worker that really died
 *    is still found within lockDuration + stalledInterval (+ grace after a restart).
 */
// The script: packages/core/src/adapters/redis/scripts/jobLockReassert-3.lua (1 renewed, 2 re-taken, 0 lost).
type WithReassert = Redis & { jobLockReassert(lock: string, stalled: string, active: string, token: string, ms: number, id: string): Promise<number> };
type StalledChecker = { moveStalledJobsToWait?: () => Promise<void> };
/** The prototype whose private stalled check is driven from here. */
const WorkerProto = Worker.prototype as unknown as StalledChecker;

export class JobLocks {
  private readonly redis: WithReassert;
  /** Redis must have been up this long before a stalled check runs. */
  readonly graceMs: number;

  constructor(
    redis: Redis,
    private readonly config: Pick<Config, 'QUEUE_PREFIX' | 'WORKER_LOCK_MS'>,
  ) {
    this.redis = redis as WithReassert;
    this.graceMs = Math.min(config.WORKER_LOCK_MS, 15_000);
    if (!('jobLockReassert' in redis)) defineScript(redis, 'jobLockReassert');
  }

  /**
   * Whether this BullMQ version lets the stalled check be driven from here (it is a private method
   * of Worker). If not, BullMQ's own timer runs it and only step 1 above applies.
   */
  get canCheckStalled(): boolean {
    return typeof (WorkerProto as StalledChecker).moveStalledJobsToWait === 'function';
  }

  private key(queueName: string, suffix: string): string {
    return bullmqQueueKey(this.config.QUEUE_PREFIX, queueName, suffix);
  }

  /** Re-assert the locks of these running jobs; returns the ids this worker has lost. */
  async reassert(jobs: Array<{ id: string; queueName: string; token: string }>): Promise<string[]> {
    const lost: string[] = [];
    for (const j of jobs) {
      const r = await this.redis.jobLockReassert(this.key(j.queueName, `${j.id}:lock`), this.key(j.queueName, 'stalled'), this.key(j.queueName, 'active'), j.token, this.config.WORKER_LOCK_MS, j.id);
      if (r === 0) lost.push(j.id);
    }
    return lost;
  }

  /** How long Redis has been up (null if INFO is not allowed: then no restart can be seen). */
  async redisUptimeMs(): Promise<number | null> {
    try {
      const info = await this.redis.info('server');
      const m = /uptime_in_seconds:(\d+)/.exec(info);
      return m ? Number(m[1]) * 1000 : null;
    } catch {
      return null;
    }
  }

  /** One stalled check over these workers' queues, unless Redis restarted less than `graceMs` ago. */
  async checkStalled(workers: Worker[]): Promise<void> {
    const up = await this.redisUptimeMs();
    if (up !== null && up < this.graceMs) return;
    for (const w of workers) {
      try {
        await (w as unknown as StalledChecker).moveStalledJobsToWait?.call(w);
      } catch (e) {
        w.emit('error', e as Error);
      }
    }
  }
}
