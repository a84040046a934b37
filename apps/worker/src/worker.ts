import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { capBucketKey, formatFailedReason, toScribeError, type CapBucket, type Config, type JobSpec } from '@scribe-fleet/core';
import { FleetQueues } from '@scribe-fleet/core/adapters/fleet-queues';
import { redisConnection, type JobResult } from '@scribe-fleet/core/adapters/queue';
import { createProcessor, type ProcessorDeps } from './processor';

/** Upper bound on "the provider said too many" re-schedules of one job, so nothing waits forever. */
export const MAX_RATE_LIMIT_DELAYS = 200;

export interface RunningWorker {
  /** One BullMQ Worker per cap-bucket queue this process consumes. */
  readonly workers: Map<string, Worker<JobSpec, JobResult, string>>;
  /** Look for newly registered buckets now (also runs every BUCKET_DISCOVERY_MS). */
  discover(): Promise<void>;
  close(): Promise<void>;
}

export interface WorkerOptions {
  /** Only consume these buckets (default: every registered bucket, discovered as they appear). */
  buckets?: (b: CapBucket) => boolean;
}

/** Jobs of one bucket this process runs at once: CPU-bound local recognition vs I/O-bound sessions. */
export function bucketConcurrency(config: Config, bucket: CapBucket, activeLimit: number): number {
  if (bucket.provider === 'local') return config.LOCAL_CONCURRENCY;
  return Math.max(1, Math.min(config.WORKER_CONCURRENCY, activeLimit));
}

/**
 * The BullMQ glue: consumes every cap-bucket queue and maps each ScribeError kind onto BullMQ
 * semantics: unrecoverable → UnrecoverableError (fails now); rate_limit (after the processor's own
 * retries) → back to `delayed` without spending an attempt, at most MAX_RATE_LIMIT_DELAYS times;
 * retry → a plain Error (BullMQ retries with backoff until `attempts` run out).
 * The failed reason is always `CODE: message`.
 */
export function startWorker(config: Config, deps: ProcessorDeps, opts: WorkerOptions = {}): RunningWorker {
  const processor = createProcessor(deps);
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
  redis.on('error', () => {});
  const fleet = new FleetQueues(config, redis, 'worker');
  const workers = new Map<string, Worker<JobSpec, JobResult, string>>();
  let closed = false;

  const handle = async (job: Job<JobSpec, JobResult, string>, token?: string, signal?: AbortSignal) => {
    const ctrl = signal ? undefined : new AbortController();
    try {
      return await processor(job.data, {
        id: job.id ?? '',
        attempt: job.attemptsMade + 1,
        signal: signal ?? ctrl!.signal,
        progress: (p) => job.updateProgress(p),
      });
    } catch (e) {
      const err = toScribeError(e);
      if (err.kind === 'unrecoverable') throw new UnrecoverableError(formatFailedReason(err));
      if (err.kind === 'rate_limit') {
        const delays = Number((job.progress as { rateLimitDelays?: number } | undefined)?.rateLimitDelays ?? 0) + 1;
        if (delays <= MAX_RATE_LIMIT_DELAYS && token) {
          const wait = (err.retryAfterMs ?? 5000) * (0.75 + Math.random() * 0.5);
          await job.updateProgress({ ...(typeof job.progress === 'object' ? job.progress : {}), rateLimitDelays: delays });
          await job.moveToDelayed(Date.now() + Math.round(wait), token);
          throw new DelayedError();
        }
      }
      throw new Error(formatFailedReason(err));
    }
  };

  const startBucket = (bucket: CapBucket) => {
    const key = capBucketKey(bucket);
    if (workers.has(key) || closed || (opts.buckets && !opts.buckets(bucket))) return;
    const w = new Worker<JobSpec, JobResult, string>(fleet.queueName(bucket), handle, {
      connection: redisConnection(config, 'worker'),
      prefix: config.QUEUE_PREFIX,
      concurrency: bucketConcurrency(config, bucket, fleet.activeLimit(bucket)),
      lockDuration: config.WORKER_LOCK_MS,
      // A crashed worker's jobs are found stalled within lockDuration + stalledInterval and re-run.
      stalledInterval: config.WORKER_LOCK_MS,
    });
    w.on('error', (e) => console.error(`[worker] ${key}: ${e.message}`));
    workers.set(key, w);
  };

  const discover = async () => {
    try {
      for (const b of await fleet.buckets()) startBucket(b);
    } catch (e) {
      console.error(`[worker] bucket discovery: ${(e as Error).message}`);
    }
  };
  void discover();
  const timer = setInterval(() => void discover(), config.BUCKET_DISCOVERY_MS);
  timer.unref();

  return {
    workers,
    discover,
    async close() {
      closed = true;
      clearInterval(timer);
      await Promise.all([...workers.values()].map((w) => w.close()));
      await deps.limiter.close?.();
      await fleet.close();
      redis.disconnect();
    },
  };
}
