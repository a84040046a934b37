import type { Redis } from 'ioredis';
import { QueueEvents, type JobsOptions } from 'bullmq';
import { capBucketKey, parseCapBucketKey, type CapBucket, type CapBuckets, type ResolvedBucket } from '../../domain/caps';
import { capBucketsFromConfig, type Config } from '../../domain/config';
import { isJobId, jobIdFor, type JobSpec } from '../../domain/job-spec';
import type { JobResult } from '../../domain/job-result';
import { bulkEntry, closesWith, openQueueNamed, redisConnection, type TranscribeQueue } from './queue';
import { RedisKeys } from '../redis/keys';

/**
 * One BullMQ queue per cap bucket (`<QUEUE_NAME>.<provider>.<account>.<class>.<mode>`), each with a
 * global concurrency of the cap plus a prefetch (see activeLimit). A saturated bucket's jobs wait in their own queue (no
 * worker slot is spent on them), so they never hold up another bucket; the lease semaphore inside
 * the job then keeps the provider's in-flight count at or under the cap. Buckets register themselves
 * in a Redis set the workers watch, so a new provider account needs no redeploy.
 * A worker's FleetQueues opens its queues on the worker's own connection (BullMQ shares a connection
 * between Queues and Workers; only a blocking consumer needs one of its own): no connection per bucket.
 */
export class FleetQueues {
  private readonly queues = new Map<string, TranscribeQueue>();
  private readonly registered = new Set<string>();
  private readonly events = new Map<string, QueueEvents>();
  readonly caps: CapBuckets;

  constructor(
    readonly config: Config,
    readonly redis: Redis,
    private readonly role: 'producer' | 'worker' = 'producer',
  ) {
    this.caps = capBucketsFromConfig(config);
  }

  get bucketsKey(): string {
    return RedisKeys.forQueue(this.config).buckets();
  }

  /** A bucket with its queue name, cap, active limit and per-worker concurrency (resolved once, domain/caps.ts). */
  resolve(bucket: CapBucket): ResolvedBucket {
    return this.caps.resolve(bucket);
  }

  /** The bucket a job (or a request's routing, see routingOf) runs in, resolved. */
  bucketOf(spec: Pick<JobSpec, 'provider' | 'account' | 'model' | 'mode'>): ResolvedBucket {
    return this.caps.of(spec);
  }

  queue(bucket: CapBucket): TranscribeQueue {
    const { queueName: name } = this.resolve(bucket);
    let q = this.queues.get(name);
    if (!q) {
      q = openQueueNamed(this.config, name, this.role, this.role === 'worker' ? this.redis : undefined);
      // Each job.waitUntilFinished listens for the queue closing: waiting on many jobs is normal here.
      q.setMaxListeners(0);
      this.queues.set(name, q);
    }
    return q;
  }

  /** Record the bucket for the workers and set its queue's global concurrency (idempotent). */
  async register(bucket: CapBucket): Promise<void> {
    const { key, activeLimit } = this.resolve(bucket);
    if (this.registered.has(key)) return;
    await this.queue(bucket).setGlobalConcurrency(activeLimit);
    await this.redis.sadd(this.bucketsKey, key);
    this.registered.add(key);
  }

  async buckets(): Promise<CapBucket[]> {
    const keys = await this.redis.smembers(this.bucketsKey);
    return keys.map(parseCapBucketKey).filter((b): b is CapBucket => b !== null);
  }

  /** Whether a bucket's queue has jobs to run or running: waiting (or paused), prioritized, delayed, active. */
  async hasWork(bucket: CapBucket): Promise<boolean> {
    return (await this.queue(bucket).getJobCountByTypes('waiting', 'prioritized', 'delayed', 'waiting-children', 'active')) > 0;
  }

  /** Add jobs (deterministic ids: existing ones are not added again). Returns how many were new. */
  async add(specs: JobSpec[], opts: JobsOptions = {}): Promise<{ added: number; duplicates: number; ids: string[]; duplicateIds: string[] }> {
    // Each id once (a hash of the canonical spec: the CPU of an enqueue is mostly these).
    const allIds = specs.map(jobIdFor);
    const byQueue = new Map<string, { bucket: CapBucket; specs: JobSpec[]; ids: string[] }>();
    specs.forEach((spec, i) => {
      const { bucket, queueName: name } = this.bucketOf(spec);
      const group = byQueue.get(name) ?? { bucket, specs: [], ids: [] };
      group.specs.push(spec);
      group.ids.push(allIds[i]!);
      byQueue.set(name, group);
    });
    const duplicateIds: string[] = [];
    for (const { bucket, specs: group, ids } of byQueue.values()) {
      await this.register(bucket);
      const q = this.queue(bucket);
      const existing = (await this.redis.pipeline(ids.map((id) => ['exists', q.toKey(id)])).exec()) ?? [];
      existing.forEach(([, n], i) => Number(n) === 1 && duplicateIds.push(ids[i]!));
      await q.addBulk(group.map((s, i) => bulkEntry(s, opts, ids[i])));
    }
    return { added: specs.length - duplicateIds.length, duplicates: duplicateIds.length, ids: allIds, duplicateIds };
  }

  /** Every bucket queue known to Redis (plus any opened here). */
  async allQueues(): Promise<TranscribeQueue[]> {
    for (const b of await this.buckets()) this.queue(b);
    return [...this.queues.values()];
  }

  /**
   * Find a job by id across the bucket queues. Only a job id (`tx_<40 hex>`, what `add` makes) is
   * looked up: BullMQ's own keys (`meta`, `events`, …) share the job keys' namespace, and a job
   * "found" under one of them could be read, or removed with the hash it is.
   */
  async getJob(id: string) {
    if (!isJobId(id)) return undefined;
    for (const q of await this.allQueues()) {
      const job = await q.getJob(id);
      if (job) return job;
    }
    return undefined;
  }

  /** QueueEvents of one bucket queue (opened once, closed with the fleet). */
  async queueEvents(queueName: string): Promise<QueueEvents> {
    let ev = this.events.get(queueName);
    if (!ev) {
      const connection = redisConnection(this.config, 'worker');
      ev = closesWith(new QueueEvents(queueName, { connection, prefix: this.config.QUEUE_PREFIX }), connection);
      this.events.set(queueName, ev);
      await ev.waitUntilReady();
    }
    return ev;
  }

  /**
   * Wait until a job completes (its result) or fails for good (rejects with `CODE: message`), driven
   * by BullMQ events rather than polling.
   */
  async waitForJob(id: string, timeoutMs = 60 * 60_000): Promise<JobResult> {
    const job = await this.getJob(id);
    if (!job) throw new Error(`job ${id} not found`);
    const events = await this.queueEvents(job.queueName);
    return job.waitUntilFinished(events, timeoutMs);
  }

  async close(): Promise<void> {
    await Promise.all([...this.events.values()].map((e) => e.close()));
    this.events.clear();
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
  }
}
