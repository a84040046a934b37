import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { formatFailedReason, toScribeError, type Config, type JobSpec } from '@scribe-fleet/core';
import { redisConnection, type JobResult } from '@scribe-fleet/core/adapters/queue';
import { createProcessor, type ProcessorDeps } from './processor';

/** Upper bound on "the provider said too many" re-schedules of one job, so nothing waits forever. */
export const MAX_RATE_LIMIT_DELAYS = 200;

export interface RunningWorker {
  worker: Worker<JobSpec, JobResult, string>;
  close(): Promise<void>;
}

/**
 * The BullMQ glue: runs the processor and maps each ScribeError kind onto BullMQ semantics:
 * unrecoverable → UnrecoverableError (fails now); rate_limit → back to `delayed` without spending an
 * attempt; retry → a plain Error (BullMQ retries with backoff until `attempts` run out).
 * The failed reason is always `CODE: message`.
 */
export function startWorker(config: Config, deps: ProcessorDeps, opts: { concurrency?: number; autorun?: boolean } = {}): RunningWorker {
  const processor = createProcessor(deps);
  const worker = new Worker<JobSpec, JobResult, string>(
    config.QUEUE_NAME,
    async (job: Job<JobSpec, JobResult, string>, token?: string, signal?: AbortSignal) => {
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
            const wait = (err.retryAfterMs ?? 1000) * (0.75 + Math.random() * 0.5);
            await job.updateProgress({ ...(typeof job.progress === 'object' ? job.progress : {}), rateLimitDelays: delays });
            await job.moveToDelayed(Date.now() + Math.round(wait), token);
            throw new DelayedError();
          }
        }
        throw new Error(formatFailedReason(err));
      }
    },
    {
      connection: redisConnection(config, 'worker'),
      prefix: config.QUEUE_PREFIX,
      concurrency: opts.concurrency ?? config.WORKER_CONCURRENCY,
      lockDuration: config.WORKER_LOCK_MS,
      autorun: opts.autorun ?? true,
    },
  );
  worker.on('error', (e) => {
    // Connection errors are retried by ioredis; log without crashing.
    console.error(`[worker] ${e.message}`);
  });
  return {
    worker,
    close: () => worker.close(),
  };
}
