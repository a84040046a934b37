import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { capBucketKey, capBucketOf, formatFailedReason, JobCancelledError, parseJobSpec, toScribeError, type CapBucket, type Config, type JobSpec } from '@scribe-fleet/core';
import { BatchService, deliverWebhook } from '@scribe-fleet/core/adapters/batch-service';
import { FleetQueues } from '@scribe-fleet/core/adapters/fleet-queues';
import { FleetStats, type JobOutcome } from '@scribe-fleet/core/adapters/fleet-stats';
import { redisConnection, type JobResult } from '@scribe-fleet/core/adapters/queue';
import { traceAttempts } from './attempt-span';
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
  const service = new BatchService({ config, redis, storage: deps.storage, fleet });
  const workers = new Map<string, Worker<JobSpec, JobResult, string>>();
  let closed = false;

  // Every attempt's end goes to the fleet history (dashboard) and this process's metrics; never throws.
  const fleetStats = new FleetStats(redis, config);
  const ended = async (spec: JobSpec | undefined, o: Omit<JobOutcome, 'bucket'>) => {
    const outcome: JobOutcome = { ...o, bucket: spec ? capBucketKey(capBucketOf(spec)) : 'unknown' };
    try {
      deps.onJobEnd?.(outcome);
    } catch {
      // metrics must not fail a job
    }
    await fleetStats.record(outcome).catch(() => undefined);
  };

  const handle = async (job: Job<JobSpec, JobResult, string>, token?: string, signal?: AbortSignal) => {
    const ctrl = signal ? undefined : new AbortController();
    const id = job.id ?? '';
    // A spec that does not parse fails below (INVALID_JOB_SPEC) without batch bookkeeping.
    let spec: JobSpec | undefined;
    try {
      spec = parseJobSpec(job.data);
    } catch {
      spec = undefined;
    }
    try {
      if (spec && (await service.jobStarted(spec, id)).cancelled) throw new JobCancelledError('its batch was cancelled');
      const result = await processor(job.data, {
        id,
        attempt: job.attemptsMade + 1,
        signal: signal ?? ctrl!.signal,
        progress: (p) => job.updateProgress(p),
      });
      if (spec) await service.jobFinished(spec, id, { result });
      await ended(spec, { outcome: 'completed', audioSeconds: result.duration });
      return result;
    } catch (e) {
      const err = signal?.aborted ? new JobCancelledError('cancelled by request') : toScribeError(e);
      // A rate limit goes back to `delayed` without spending an attempt, while re-schedules remain.
      const delays = Number((job.progress as { rateLimitDelays?: number } | undefined)?.rateLimitDelays ?? 0) + 1;
      const reschedule = err.kind === 'rate_limit' && delays <= MAX_RATE_LIMIT_DELAYS && Boolean(token);
      // The job's last word: unrecoverable, or (not re-scheduled) on its last attempt.
      const final = err.kind === 'unrecoverable' || (!reschedule && job.attemptsMade + 1 >= (job.opts.attempts ?? 1));
      if (final && spec) await service.jobFinished(spec, id, { error: err }).catch(() => undefined);
      await ended(spec, { outcome: final ? (err.code === 'JOB_CANCELLED' ? 'cancelled' : 'failed') : reschedule ? 'rate_limited' : 'retry', code: err.code });
      if (err.kind === 'unrecoverable') throw new UnrecoverableError(formatFailedReason(err));
      if (reschedule) {
        const wait = (err.retryAfterMs ?? 5000) * (0.75 + Math.random() * 0.5);
        await job.updateProgress({ ...(typeof job.progress === 'object' ? job.progress : {}), rateLimitDelays: delays });
        await job.moveToDelayed(Date.now() + Math.round(wait), token);
        throw new DelayedError();
      }
      throw new Error(formatFailedReason(err));
    }
  };

  const startBucket = (bucket: CapBucket) => {
    const key = capBucketKey(bucket);
    if (workers.has(key) || closed || (opts.buckets && !opts.buckets(bucket))) return;
    // Each attempt is a root span linked to the job's enqueue (see traceAttempts).
    const w = new Worker<JobSpec, JobResult, string>(fleet.queueName(bucket), traceAttempts(deps.telemetry, handle), {
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

  // Cancellation reaches whichever process runs the job: a broadcast every worker listens to.
  const sub = redis.duplicate();
  sub.on('error', () => {});
  void sub.subscribe(service.cancelChannel);
  sub.on('message', (_channel: string, jobId: string) => {
    for (const w of workers.values()) w.cancelJob(jobId, 'cancelled by request');
  });

  // Batch finalisation (report to S3) and webhook delivery run on small queues of their own.
  const connection = redisConnection(config, 'worker');
  const control = new Worker(service.control.name, async (job) => service.finalize(job.data.batchId as string).then((b) => ({ status: b.status, report: b.report })), {
    connection,
    prefix: config.QUEUE_PREFIX,
    concurrency: 2,
  });
  control.on('error', (e) => console.error(`[worker] control: ${e.message}`));
  const webhooks = new Worker(
    service.webhooks.name,
    async (job) => {
      if (!config.WEBHOOK_SECRET) throw new UnrecoverableError('CONFIG_INVALID: WEBHOOK_SECRET is not set on this worker');
      return deliverWebhook(config.WEBHOOK_SECRET, job.data.url as string, job.data.body, job.attemptsMade + 1, job.id);
    },
    { connection, prefix: config.QUEUE_PREFIX, concurrency: 8 },
  );
  webhooks.on('error', (e) => console.error(`[worker] webhooks: ${e.message}`));

  return {
    workers,
    discover,
    async close() {
      closed = true;
      clearInterval(timer);
      await Promise.all([...workers.values()].map((w) => w.close()));
      await Promise.all([control.close(), webhooks.close()]);
      await deps.limiter.close?.();
      await service.close();
      await fleet.close();
      sub.disconnect();
      redis.disconnect();
    },
  };
}
