import type { Redis } from 'ioredis';
import type { BatchJobResult } from '../../domain/batch';
import type { JobEndClaim, JobEndStore } from '../../ports/batch-store';
import { RedisKeys } from './keys';
import { defineScript } from './scripts';

type WithClaim = Redis & { jobEndClaim(key: string, ts: string, outcome: string, ttl: number): Promise<[number, string, number]> };

export type { JobEndClaim } from '../../ports/batch-store';

/**
 * The first terminal outcome of a job wins. One small hash per job id:
 *   <p>:job-end:<jobId>   { ts, gen, outcome }
 * `ts` is the BullMQ job's creation time: a job added again under the same id after its removal
 * (retention, `--force`) is a new life and starts with no outcome. `gen` counts redrives of the same
 * life, so each run's webhooks have delivery ids of their own while a repeated report of the same end
 * (a stalled attempt that finished after all, the reconciler, a retried hook) maps to the same id.
 * The claim is one script (redis/scripts/jobEndClaim-1.lua); the key is spelled in redis/keys.ts.
 * The JobEndStore port (ports/batch-store.ts) over Redis.
 */
export class JobEnds implements JobEndStore {
  private readonly redis: WithClaim;
  private readonly keys: RedisKeys;
  constructor(
    redis: Redis,
    prefix: string,
    /** How long an end is remembered (the jobs' retention; 0 = for ever). */
    private readonly ttlSeconds: number,
  ) {
    this.redis = redis as WithClaim;
    this.keys = new RedisKeys(prefix);
    if (!('jobEndClaim' in redis)) defineScript(redis, 'jobEndClaim');
  }

  private key(jobId: string): string {
    return this.keys.jobEnd(jobId);
  }

  /** Record the end of the job's current life, unless one is recorded already. */
  async claim(jobId: string, createdAt: number, outcome: BatchJobResult): Promise<JobEndClaim> {
    // Remembered a little longer than the job itself (late reports of the same life): the retention
    // again, at most a day more.
    const ttl = this.ttlSeconds > 0 ? this.ttlSeconds + Math.min(this.ttlSeconds, 24 * 3600) : 0;
    const [first, stored, gen] = await this.redis.jobEndClaim(this.key(jobId), String(createdAt), JSON.stringify(outcome), ttl);
    return { first: first === 1, outcome: JSON.parse(stored) as BatchJobResult, gen: Number(gen) };
  }

  /** The recorded end, if the job has one. */
  async get(jobId: string): Promise<BatchJobResult | null> {
    const o = await this.redis.hget(this.key(jobId), 'outcome');
    return o ? (JSON.parse(o) as BatchJobResult) : null;
  }

  /** Which of these jobs have a recorded end (one round trip). */
  async recorded(jobIds: string[]): Promise<boolean[]> {
    if (!jobIds.length) return [];
    const rows = (await this.redis.pipeline(jobIds.map((id) => ['hexists', this.key(id), 'outcome'])).exec()) ?? [];
    return rows.map(([, n]) => Number(n) === 1);
  }

  /** The job runs again (redrive): forget its end and start a new generation. */
  async reopen(jobId: string): Promise<void> {
    await this.redis.multi().hdel(this.key(jobId), 'outcome').hincrby(this.key(jobId), 'gen', 1).exec();
  }
}
