/**
 * What the fleet looks like right now, read from Redis: per cap bucket the queue's job counts and
 * the cap semaphore (slots in use / effective / configured), the fleet history the workers record
 * (throughput, audio hours, failures by code), and the recent batches. Shared by GET /v1/fleet (the
 * dashboard) and GET /metrics (Prometheus), which read it at request/scrape time.
 */
import { capBucketKey, type BatchJobState, type BatchProgress, type BatchRecord, type CapBucket, type Config, type PlanProgress } from '@scribe-fleet/core';
import { openPlanReader, type PlanReader } from '@scribe-fleet/core/adapters/plan-services';
import type { BatchService } from '@scribe-fleet/core/app/batch-service';
import type { ControlQueues } from '@scribe-fleet/core/adapters/bullmq/control-queues';
import type { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { queueJobCounts } from '@scribe-fleet/core/adapters/bullmq/queue';
import type { RedisClient } from '@scribe-fleet/core/adapters/redis/connection';
import { FleetStats } from '@scribe-fleet/core/adapters/redis/fleet-stats';
import { limiterFromConfig, type RedisLimiter } from '@scribe-fleet/core/adapters/redis/redis-limiter';

/** The part of the API context the fleet view reads (ApiContext has all of it). */
export interface FleetContext {
  config: Config;
  service: BatchService;
  fleet: FleetQueues;
  redis: RedisClient;
  controlQueues: ControlQueues;
}

/** BullMQ job states counted per queue. */
export const QUEUE_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed', 'waiting-children'] as const;
export type QueueState = (typeof QUEUE_STATES)[number];
export type QueueCounts = Record<QueueState, number>;

export interface BucketView {
  /** `provider:account:class:mode` */
  bucket: string;
  queue: string;
  provider: string;
  account: string;
  modelClass: string;
  mode: string;
  counts: QueueCounts;
  /**
   * Jobs waiting to run: waiting + prioritized + delayed. Not the raw `wait` list, which misses
   * prioritized jobs (a ZSET) and delayed ones (retry backoff, rate-limit re-schedules).
   */
  backlog: number;
  /** Slots of the cap semaphore (null when Redis did not answer). */
  slots: { inUse: number; effective: number; configured: number } | null;
  /** Jobs of the bucket allowed active fleet-wide (the queue's global concurrency: cap + prefetch). */
  activeLimit: number;
  /** Jobs of the bucket one worker process runs at once (same formula as the worker's). */
  perWorker: number;
  /** Worker processes this bucket can keep busy now: ceil(min(backlog + active, activeLimit) / perWorker). */
  desiredWorkers: number;
}

export interface QueueView {
  name: string;
  role: 'control' | 'webhooks';
  counts: QueueCounts;
}

export interface BatchView {
  id: string;
  status: string;
  /**
   * What the page shows for the status: `failed` for a finished batch none of whose files
   * completed, `finished with failures` when some failed, `paused: budget` for a running batch
   * a budget paused (`pausedReason` beside it), else the status itself.
   */
  outcome: string;
  /** The output prefix (`s3://bucket/prefix/`). */
  out: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  source: string;
  provider: string;
  mode: string;
  total: number;
  listing: boolean;
  /** Why a budget paused it (with `outcome` `paused: budget`). */
  pausedReason?: string;
  counts: Record<BatchJobState, number>;
  done: number;
  fraction: number;
  audioSecondsDone: number;
  audioSecondsTotalEstimate: number | null;
  filesPerSecond: number;
  etaSeconds: number | null;
  /** The plan the batch was made from, beside its progress (absent: no plan, or it expired). */
  planProgress?: PlanProgress;
}

export interface FleetView {
  generatedAt: string;
  buckets: BucketView[];
  queues: QueueView[];
  backlog: { total: number };
  throughput: {
    /** Jobs finished per minute over the last hour (oldest first, the current minute last). */
    perMinute: Array<{ t: number; completed: number; failed: number; cancelled: number; retried: number; rateLimited: number }>;
    lastMinute: number;
    lastHour: number;
    /** Attempts that ended in a transient error (retried with backoff), and re-scheduled after a provider 429, last hour. */
    retriedLastHour: number;
    rateLimitedLastHour: number;
  };
  audio: {
    /** Audio hours transcribed per hour over the last 24 hours (oldest first). */
    hoursPerHour: Array<{ t: number; hours: number }>;
    last24h: number;
  };
  /** Jobs failed for good over the last 24 hours, by error code (most first). */
  failures: Array<{ code: string; count: number }>;
  batches: BatchView[];
}

/** A cap-bucket queue's counts in every state counted (0 for a state BullMQ does not report). */
const countsOf = (q: Parameters<typeof queueJobCounts>[0]): Promise<QueueCounts> => queueJobCounts(q, QUEUE_STATES);

/**
 * Reads the fleet. Holds a RedisLimiter (for `snapshot`, built like the worker's) on a connection of
 * its own, and the fleet history reader. One per API process (see fleetReader).
 */
export class FleetReader {
  readonly limiter: RedisLimiter;
  readonly stats: FleetStats;
  readonly plans: PlanReader;
  private cached?: { at: number; value: Promise<BucketView[]> };

  constructor(private readonly ctx: FleetContext) {
    const { config } = ctx;
    // Scrapes report Redis being down rather than wait for it.
    this.limiter = limiterFromConfig(config, { role: 'reader' });
    this.stats = new FleetStats(ctx.redis, config);
    this.plans = openPlanReader(ctx);
  }

  /** Every registered bucket with its queue counts and cap slots. */
  async buckets(): Promise<BucketView[]> {
    const { fleet, config } = this.ctx;
    const buckets = (await fleet.buckets()).sort((a, b) => capBucketKey(a).localeCompare(capBucketKey(b)));
    return Promise.all(
      buckets.map(async (b): Promise<BucketView> => {
        const key = capBucketKey(b);
        const [counts, slots] = await Promise.all([
          countsOf(fleet.queue(b)),
          this.limiter.snapshot(key).then(
            (s) => ({ inUse: s.inFlight, effective: s.effectiveCap, configured: s.configuredCap }),
            () => null,
          ),
        ]);
        // The same resolved bucket the workers and the queue use (domain/caps.ts ResolvedBucket).
        const { activeLimit, perWorker, queueName } = fleet.resolve(b);
        const backlog = counts.waiting + counts.prioritized + counts.delayed;
        const runnable = Math.min(backlog + counts.active, activeLimit);
        return {
          bucket: key,
          queue: queueName,
          provider: b.provider,
          account: b.account,
          modelClass: b.modelClass,
          mode: b.mode,
          counts,
          backlog,
          slots,
          activeLimit,
          perWorker,
          desiredWorkers: Math.ceil(runnable / perWorker),
        };
      }),
    );
  }

  /** `buckets()` shared by the gauges of one scrape (and scrapes less than `maxAgeMs` apart). */
  bucketsCached(maxAgeMs = 1000): Promise<BucketView[]> {
    const now = Date.now();
    if (!this.cached || now - this.cached.at > maxAgeMs) {
      const value = this.buckets();
      value.catch(() => (this.cached = undefined));
      this.cached = { at: now, value };
    }
    return this.cached.value;
  }

  /** The batch finalisation and webhook delivery queues. */
  async queues(): Promise<QueueView[]> {
    const { controlQueues } = this.ctx;
    const { names } = controlQueues;
    const counts = await controlQueues.jobCounts(QUEUE_STATES);
    return [
      { name: names.control, role: 'control', counts: counts.control },
      { name: names.webhooks, role: 'webhooks', counts: counts.webhooks },
    ];
  }

  /** The `limit` most recent batches, newest first. */
  async batches(limit: number): Promise<BatchView[]> {
    const { service } = this.ctx;
    const ids = await service.batches.recent(limit);
    const views = await Promise.all(
      ids.map((id) =>
        service.getBatch(id).then(
          async ({ batch, progress }) => {
            // The plan is an addition: a plan that cannot be read now leaves the batch without it.
            const plan = batch.plan ? await this.plans.beside(batch, progress).catch(() => null) : null;
            return batchView(batch, progress, plan);
          },
          () => null, // removed meanwhile
        ),
      ),
    );
    return views.filter((v): v is BatchView => v !== null);
  }

  async view(opts: { batches?: number } = {}): Promise<FleetView> {
    const [buckets, queues, history, batches] = await Promise.all([this.buckets(), this.queues(), this.stats.read({ minutes: 60, hours: 24 }), this.batches(opts.batches ?? 10)]);
    const perMinute = history.minutes.map((m) => ({ t: m.t, completed: m.completed, failed: m.failed, cancelled: m.cancelled, retried: m.retried, rateLimited: m.rateLimited }));
    const finished = (m: { completed: number; failed: number; cancelled: number }) => m.completed + m.failed + m.cancelled;
    const hoursPerHour = history.hours.map((h) => ({ t: h.t, hours: h.audioSeconds / 3600 }));
    return {
      generatedAt: new Date().toISOString(),
      buckets,
      queues,
      backlog: { total: buckets.reduce((n, b) => n + b.backlog, 0) },
      throughput: {
        perMinute,
        lastMinute: finished(perMinute[perMinute.length - 1] ?? { completed: 0, failed: 0, cancelled: 0 }),
        lastHour: perMinute.reduce((n, m) => n + finished(m), 0),
        retriedLastHour: perMinute.reduce((n, m) => n + m.retried, 0),
        rateLimitedLastHour: perMinute.reduce((n, m) => n + m.rateLimited, 0),
      },
      audio: { hoursPerHour, last24h: hoursPerHour.reduce((n, h) => n + h.hours, 0) },
      failures: Object.entries(history.failuresByCode)
        .map(([code, count]) => ({ code, count }))
        .sort((a, b) => b.count - a.count || a.code.localeCompare(b.code)),
      batches,
    };
  }

  async close(): Promise<void> {
    await this.limiter.close();
  }
}

/** A batch's outcome as the page names it (see BatchView.outcome); a running batch a budget paused: `paused: budget`. */
export function batchOutcome(batch: Pick<BatchRecord, 'status' | 'counts' | 'paused'>): string {
  if (batch.status === 'running' && batch.paused) return `paused: ${batch.paused}`;
  if (batch.status !== 'finished' || batch.counts.failed === 0) return batch.status;
  return batch.counts.completed + batch.counts.skipped === 0 ? 'failed' : 'finished with failures';
}

function batchView(batch: BatchRecord, progress: BatchProgress, plan: PlanProgress | null): BatchView {
  return {
    id: batch.id,
    status: batch.status,
    outcome: batchOutcome(batch),
    out: batch.out,
    createdAt: batch.createdAt,
    ...(batch.startedAt ? { startedAt: batch.startedAt } : {}),
    ...(batch.finishedAt ? { finishedAt: batch.finishedAt } : {}),
    source: batch.source,
    provider: batch.provider,
    mode: batch.mode,
    total: batch.total,
    listing: batch.listing === true,
    counts: batch.counts,
    done: progress.done,
    fraction: progress.fraction,
    audioSecondsDone: progress.audioSecondsDone,
    audioSecondsTotalEstimate: progress.audioSecondsTotalEstimate,
    filesPerSecond: progress.filesPerSecond,
    etaSeconds: progress.etaSeconds,
    ...(plan ? { planProgress: plan } : {}),
    ...(batch.pausedReason ? { pausedReason: batch.pausedReason } : {}),
  };
}

const readers = new WeakMap<FleetContext, FleetReader>();

/** The reader of an API context (one per context, so the dashboard and /metrics share it). */
export function fleetReader(ctx: FleetContext): { reader: FleetReader; created: boolean } {
  let reader = readers.get(ctx);
  if (reader) return { reader, created: false };
  reader = new FleetReader(ctx);
  readers.set(ctx, reader);
  return { reader, created: true };
}

/** Forget (and close) the context's reader: called when its app closes. */
export async function closeFleetReader(ctx: FleetContext): Promise<void> {
  const reader = readers.get(ctx);
  readers.delete(ctx);
  await reader?.close();
}
