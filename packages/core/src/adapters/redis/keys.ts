import type { BatchJobState } from '../../domain/batch';
import type { Config } from '../../domain/config';

/**
 * Every Redis key and pub/sub channel of the project's own is spelled here and nowhere else, so the
 * layout reads in one place and no module reaches into another's records by rebuilding its key.
 * These strings are the data already in Redis: changing one orphans what is stored under it.
 *
 * With p = QUEUE_PREFIX and q = QUEUE_NAME:
 *   p:q:batch:<id>              hash     a batch's record                         (BatchStore)
 *   p:q:batch:<id>:s:<state>    zset     its job ids in one state                 (BatchStore)
 *   p:q:batch:<id>:r            hash     job id → compact result                  (BatchStore)
 *   p:q:batch:<id>:parts        list     S3 keys of its spilled report parts      (BatchStore)
 *   p:q:batch:<id>:webhooks     zset     its webhook deliveries                   (ControlQueues)
 *   p:q:batches                 zset     batch ids by creation time               (BatchStore)
 *   p:q:job-end:<jobId>         hash     the first terminal outcome of a job      (JobEnds)
 *   p:q:budget:batch:<id>       hash     a batch's budget: limits, spent, reserved (RedisBudgetStore)
 *   p:q:budget:acct:<provider>:<account>:<yyyy-mm-dd>
 *                               hash     an account's budget book of one UTC day  (RedisBudgetStore)
 *   p:q:job-batches:<jobId>     set      further batches a job belongs to         (BatchStore)
 *   p:q:cancel                  channel  job ids to abort on their workers        (BullmqJobQueue)
 *   p:q:reconcile-lock          string   one reconciler sweep at a time           (RedisFleetLock)
 *   p:q:reconcile-cursor        hash     batch id → next queued position to sweep (BatchStore)
 *   p:q:buckets                 set      cap buckets that have a queue            (FleetQueues)
 *   p:q:session:<sha256(id)>    string   a dashboard session (JSON, with a TTL)   (RedisSessionStore)
 *   p:q:login-attempts:<addr>   string   login attempts of one client address in  (RedisAttemptCounter)
 *                                        the current fixed window (TTL = window)
 *   p:{q:fleet}:m:<minute>      hash     fleet history per minute                 (FleetStats)
 *   p:{q:fleet}:h:<hour>        hash     fleet history per hour                   (FleetStats)
 *   p:{q:usage}:d:<day>         hash     the usage book of a UTC day (YYYY-MM-DD):  (RedisUsageBook)
 *                                        `<metric>|<provider>|<model>|<mode>|<account>` → figure
 *   p:{q:usage}:d:<day>:b       hash     the same per batch: `<metric>|<batchId>|<provider>|…`
 *                                        (both kept USAGE_RETENTION_DAYS after their last write)
 *   p:cap:{<bucket>}:leases     zset     a cap bucket's leases                    (RedisLimiter)
 *   p:cap:{<bucket>}:state      hash     its effective cap                        (RedisLimiter)
 *   p:cap:{<bucket>}:released   channel  a lease of it was released               (RedisLimiter)
 * On a Redis Cluster QUEUE_PREFIX begins with a hash tag (`{scribe}`, enforced by the config), so
 * every key above and every BullMQ key is in that tag's one slot (ARCHITECTURE.md, "Redis Cluster").
 * BullMQ's own keys stay BullMQ's (`queue.toKey`, `job.queueQualifiedName`); `bullmqJobKey` and
 * `bullmqQueueKey` name the ones the project touches directly (a redrive resets a job's stall counter;
 * JobLocks re-asserts locks after a Redis restart).
 */

/** Keys under `<QUEUE_PREFIX>:<QUEUE_NAME>`: batches, job ends and the fleet's control keys. */
export class RedisKeys {
  constructor(
    /** `<QUEUE_PREFIX>:<QUEUE_NAME>` */
    readonly base: string,
  ) {}

  static forQueue(config: Pick<Config, 'QUEUE_PREFIX' | 'QUEUE_NAME'>): RedisKeys {
    return new RedisKeys(`${config.QUEUE_PREFIX}:${config.QUEUE_NAME}`);
  }

  /** A batch's record (hash). */
  batch(id: string): string {
    return `${this.base}:batch:${id}`;
  }
  /** What a batch's state sets start with: the scripts append the state. */
  batchStatePrefix(id: string): string {
    return `${this.batch(id)}:s:`;
  }
  /** A batch's job ids in one state (zset, score = position in the batch). */
  batchState(id: string, state: BatchJobState): string {
    return `${this.batchStatePrefix(id)}${state}`;
  }
  /** A batch's job id → compact result (hash), until the report is written. */
  batchResults(id: string): string {
    return `${this.batch(id)}:r`;
  }
  /** S3 keys of the report parts a batch's finished jobs were spilled to (list, in order). */
  batchParts(id: string): string {
    return `${this.batch(id)}:parts`;
  }
  /** A batch's webhook deliveries (zset of delivery ids by time queued). */
  batchWebhooks(id: string): string {
    return `${this.batch(id)}:webhooks`;
  }
  /** Batch ids by creation time (zset). */
  batchIndex(): string {
    return `${this.base}:batches`;
  }

  /** A stored plan (string: its JSON), kept PLAN_TTL_SECONDS. */
  plan(id: string): string {
    return `${this.base}:plan:${id}`;
  }

  /** A batch's budget book (hash: limits, spent and reserved audio seconds and cost, one reservation per admitted job). */
  budgetBatch(batchId: string): string {
    return `${this.base}:budget:batch:${batchId}`;
  }
  /** An account's budget book of one UTC day (hash, as a batch's; its limits come from SCRIBE_BUDGETS). */
  budgetAccount(provider: string, account: string, day: string): string {
    return `${this.base}:budget:acct:${provider}:${account}:${day}`;
  }

  /** The first terminal outcome of a job's life (hash). */
  jobEnd(jobId: string): string {
    return `${this.base}:job-end:${jobId}`;
  }
  /** Batches a job belongs to besides its own (set): it was enqueued again by a later batch. */
  jobBatches(jobId: string): string {
    return `${this.base}:job-batches:${jobId}`;
  }

  /** Pub/sub channel of job ids whose workers must abort them. */
  cancelChannel(): string {
    return `${this.base}:cancel`;
  }
  /** The reconciler's fleet-wide lock (string with a TTL). */
  reconcileLock(): string {
    return this.fleetLock('reconcile');
  }
  /** A fleet-wide lock by name (string with a TTL): `<name>-lock`. */
  fleetLock(name: string): string {
    return `${this.base}:${name}-lock`;
  }
  /** Where the reconciler's walk of each batch's queued jobs got to (hash: batch id → position). */
  reconcileCursor(): string {
    return `${this.base}:reconcile-cursor`;
  }
  /** Cap buckets that have a queue (set), watched by the workers. */
  buckets(): string {
    return `${this.base}:buckets`;
  }

  /**
   * A dashboard session (string: JSON record, with the session's TTL), by the hex SHA-256 of its
   * id: the cookie value itself is never a key, so a reader of Redis cannot replay a session.
   */
  session(idHash: string): string {
    return `${this.base}:session:${idHash}`;
  }
  /** Login attempts of one client address in the current fixed window (string counter, TTL = the window). */
  loginAttempts(address: string): string {
    return `${this.base}:login-attempts:${address}`;
  }
}

/**
 * The fleet history's counters. All under one hash tag, so a write of a minute and an hour is one
 * MULTI even on Redis Cluster.
 */
export class FleetStatsKeys {
  private readonly base: string;
  constructor(config: Pick<Config, 'QUEUE_PREFIX' | 'QUEUE_NAME'>) {
    this.base = `${config.QUEUE_PREFIX}:{${config.QUEUE_NAME}:fleet}`;
  }

  /** Counters of one minute (`minute` = whole minutes since the epoch). */
  minute(minute: number): string {
    return `${this.base}:m:${minute}`;
  }
  /** Counters of one hour (`hour` = whole hours since the epoch). */
  hour(hour: number): string {
    return `${this.base}:h:${hour}`;
  }
}

/**
 * The usage book's hashes (RedisUsageBook): one per UTC day, and one per day holding that day's
 * figures per batch (so a day range lists its batches without a scan). All under one hash tag, so a
 * write of both is one MULTI even on Redis Cluster.
 */
export class UsageKeys {
  private readonly base: string;
  constructor(config: Pick<Config, 'QUEUE_PREFIX' | 'QUEUE_NAME'>) {
    this.base = `${config.QUEUE_PREFIX}:{${config.QUEUE_NAME}:usage}`;
  }

  /** A day's figures per key (`day` = YYYY-MM-DD, UTC). */
  day(day: string): string {
    return `${this.base}:d:${day}`;
  }
  /** A day's figures per batch and key. */
  dayByBatch(day: string): string {
    return `${this.base}:d:${day}:b`;
  }
}

/**
 * The cap semaphore's keys, per bucket. Hash-tagged by bucket, so the keys a script touches share a
 * Redis Cluster slot. The prefix is the limiter's option (`capPrefix(config)` in the fleet).
 */
export class CapKeys {
  constructor(readonly prefix: string) {}

  /** The bucket's leases (zset scored by expiry). */
  leases(bucket: string): string {
    return `${this.prefix}:{${bucket}}:leases`;
  }
  /** The bucket's adaptive state (hash: effective cap, when it last changed). */
  state(bucket: string): string {
    return `${this.prefix}:{${bucket}}:state`;
  }
  /** Pub/sub channel: a lease of the bucket was released (wakes waiters). */
  released(bucket: string): string {
    return `${this.prefix}:{${bucket}}:released`;
  }
}

/** The fleet's cap semaphore prefix. */
export function capPrefix(config: Pick<Config, 'QUEUE_PREFIX'>): string {
  return `${config.QUEUE_PREFIX}:cap`;
}

/** BullMQ's hash of a job, from its queue's qualified name (`<prefix>:<queue>`): BullMQ has no accessor for it. */
export function bullmqJobKey(queueQualifiedName: string, jobId: string): string {
  return `${queueQualifiedName}:${jobId}`;
}

/** One of BullMQ's keys of a queue (`<prefix>:<queue>:<suffix>`: `<jobId>:lock`, `stalled`, `active`). */
export function bullmqQueueKey(prefix: string, queueName: string, suffix: string): string {
  return `${prefix}:${queueName}:${suffix}`;
}
