import { Queue, type ConnectionOptions, type JobsOptions, type JobType } from 'bullmq';
import type { Config } from '../../domain/config';
import { isCluster, openCluster, redisOptions, type RedisClient, type RedisConfig } from '../redis/connection';
import type { JobResult } from '../../domain/job-result';
import { jobIdFor, type JobSpec } from '../../domain/job-spec';

/**
 * Connection options for BullMQ, by role (see redis/connection.ts: workers must not cap retries per
 * request); producers' queues also queue no command while Redis is away (BullMQ waits for `ready`).
 * On a Redis Cluster it is a Cluster client instead (BullMQ builds only single-node clients from
 * options), which BullMQ counts as shared and never closes: give it to `closesWith`.
 */
export function redisConnection(config: RedisConfig, role: 'worker' | 'producer'): ConnectionOptions {
  if (isCluster(config)) {
    const cluster = openCluster(config, role, role === 'producer' ? { enableOfflineQueue: false } : {});
    cluster.on('error', () => {});
    return cluster;
  }
  return role === 'worker' ? { url: config.REDIS_URL, ...redisOptions('worker') } : { url: config.REDIS_URL, ...redisOptions('producer'), enableOfflineQueue: false };
}

/** Disconnect `connection` if it is a client redisConnection made (a Cluster); plain options hold none. */
export function releaseConnection(connection: ConnectionOptions | undefined): void {
  const c = connection as { disconnect?: () => void } | undefined;
  if (typeof c?.disconnect === 'function') c.disconnect();
}

/** `owner` (a Queue, QueueEvents, Worker) whose close() also closes `connection` if it is a client redisConnection made for it. */
export function closesWith<T extends { close(): Promise<void> }>(owner: T, connection: ConnectionOptions): T {
  const close = owner.close.bind(owner);
  owner.close = async () => {
    try {
      await close();
    } finally {
      releaseConnection(connection);
    }
  };
  return owner;
}

/** Default options of every transcription job: bounded retries with exponential backoff. */
export function defaultJobOptions(config: Pick<Config, 'JOB_ATTEMPTS' | 'JOB_BACKOFF_MS' | 'JOB_RETENTION_SECONDS'>): JobsOptions {
  // Finished jobs are kept JOB_RETENTION_SECONDS (0 = forever); batches keep their own results and report.
  const keep = config.JOB_RETENTION_SECONDS > 0 ? { age: config.JOB_RETENTION_SECONDS } : false;
  return {
    attempts: config.JOB_ATTEMPTS,
    backoff: { type: 'exponential', delay: config.JOB_BACKOFF_MS, jitter: 0.5 },
    removeOnComplete: keep,
    removeOnFail: keep,
  };
}

export type TranscribeQueue = Queue<JobSpec, JobResult, string>;

/** A bucket queue; with `shared` (a worker-role connection), on that connection instead of one of its own. */
export function openQueueNamed(config: Config, name: string, role: 'worker' | 'producer' = 'producer', shared?: RedisClient): TranscribeQueue {
  const connection = shared ?? redisConnection(config, role);
  const queue = new Queue<JobSpec, JobResult, string>(name, { connection, prefix: config.QUEUE_PREFIX, defaultJobOptions: defaultJobOptions(config) });
  return shared ? queue : closesWith(queue, connection);
}

/** The job name is the provider/mode pair, so dashboards can group by it. */
export function jobName(spec: Pick<JobSpec, 'provider' | 'mode'>): string {
  return `${spec.provider}.${spec.mode}`;
}

export function bulkEntry(spec: JobSpec, opts: JobsOptions = {}, jobId: string = jobIdFor(spec)) {
  return { name: jobName(spec), data: spec, opts: { ...opts, jobId } };
}

/** A queue's job counts in `states` (0 for a state BullMQ does not report): dashboard and metrics. */
export async function queueJobCounts<S extends JobType>(queue: Pick<Queue, 'getJobCounts'>, states: readonly S[]): Promise<Record<S, number>> {
  const raw = await queue.getJobCounts(...states);
  const out = {} as Record<S, number>;
  for (const s of states) out[s] = Number(raw[s] ?? 0);
  return out;
}
