import type { Redis } from 'ioredis';
import type { BatchJobResult } from '../domain/batch';

/**
 * The first terminal outcome of a job wins. One small hash per job id:
 *   <p>:job-end:<jobId>   { ts, gen, outcome }
 * `ts` is the BullMQ job's creation time: a job added again under the same id after its removal
 * (retention, `--force`) is a new life and starts with no outcome. `gen` counts redrives of the same
 * life, so each run's webhooks have delivery ids of their own while a repeated report of the same end
 * (a stalled attempt that finished after all, the reconciler, a retried hook) maps to the same id.
 */
// KEYS[1] = the job's hash. ARGV: job creation ts, outcome JSON, ttl seconds (0 = none).
// Returns {1 if this call recorded the outcome, the recorded outcome JSON, gen}.
const CLAIM = `
local ts = redis.call('HGET', KEYS[1], 'ts')
if ts ~= ARGV[1] then
  redis.call('HDEL', KEYS[1], 'outcome')
  redis.call('HSET', KEYS[1], 'ts', ARGV[1])
end
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
local o = redis.call('HGET', KEYS[1], 'outcome')
if o then return {0, o, gen} end
redis.call('HSET', KEYS[1], 'outcome', ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return {1, ARGV[2], gen}
`;

type WithClaim = Redis & { jobEndClaim(key: string, ts: string, outcome: string, ttl: number): Promise<[number, string, number]> };

export interface JobEndClaim {
  /** This call recorded the job's end (false: an earlier report won, and `outcome` is that one). */
  first: boolean;
  outcome: BatchJobResult;
  gen: number;
}

export class JobEnds {
  private readonly redis: WithClaim;
  constructor(
    redis: Redis,
    private readonly prefix: string,
    /** How long an end is remembered (the jobs' retention; 0 = for ever). */
    private readonly ttlSeconds: number,
  ) {
    this.redis = redis as WithClaim;
    if (!('jobEndClaim' in redis)) redis.defineCommand('jobEndClaim', { numberOfKeys: 1, lua: CLAIM });
  }

  private key(jobId: string): string {
    return `${this.prefix}:job-end:${jobId}`;
  }

  /** Record the end of the job's current life, unless one is recorded already. */
  async claim(jobId: string, createdAt: number, outcome: BatchJobResult): Promise<JobEndClaim> {
    const ttl = this.ttlSeconds > 0 ? this.ttlSeconds + 24 * 3600 : 0;
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
