import { Queue, type ConnectionOptions, type JobType } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../../domain/config';
import type { FinalizeQueue, WebhookDelivery, WebhookEvent, WebhookOutbox } from '../../ports/job-queue';
import { RedisKeys } from '../redis/keys';
import { queueJobCounts, redisConnection, releaseConnection } from './queue';

/** How long a batch's index of its webhook deliveries is kept after the last one was queued. */
const WEBHOOK_INDEX_TTL_S = 30 * 24 * 3600;

/**
 * The fleet's two small queues beside the cap-bucket ones, consumed by every worker:
 *   `<QUEUE_NAME>-control`   batch finalisations (the report): the FinalizeQueue port
 *   `<QUEUE_NAME>-webhooks`  webhook deliveries, retried with backoff: the WebhookOutbox port
 * A batch's deliveries are also indexed in a zset of its own (`RedisKeys.batchWebhooks`), so their
 * status is listed without scanning the queue. The Queue objects are exposed for Bull Board and the
 * queue names for the workers that consume them; nothing outside adapters/ needs to import BullMQ.
 */
export class ControlQueues implements FinalizeQueue, WebhookOutbox {
  /** `<QUEUE_NAME>-control`: batch finalisations. */
  readonly control: Queue;
  /** `<QUEUE_NAME>-webhooks`: webhook deliveries. */
  readonly webhooks: Queue;
  private readonly keys: RedisKeys;
  private readonly own?: ConnectionOptions;

  /** `connection`: the queues' (default: one of their own; a worker passes its own connection to share it). */
  constructor(
    config: Config,
    private readonly redis: Redis,
    connection?: ConnectionOptions,
  ) {
    // One of their own unless given: closed with them (on a Redis Cluster it is a client BullMQ would not close).
    if (!connection) this.own = connection = redisConnection(config, 'worker');
    this.keys = RedisKeys.forQueue(config);
    this.control = new Queue(`${config.QUEUE_NAME}-control`, { connection, prefix: config.QUEUE_PREFIX, defaultJobOptions: { attempts: 10, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: 1000, removeOnFail: 1000 } });
    this.webhooks = new Queue(`${config.QUEUE_NAME}-webhooks`, {
      connection,
      prefix: config.QUEUE_PREFIX,
      defaultJobOptions: { attempts: config.WEBHOOK_ATTEMPTS, backoff: { type: 'exponential', delay: config.WEBHOOK_BACKOFF_MS, jitter: 0.3 }, removeOnComplete: { age: 7 * 24 * 3600 }, removeOnFail: { age: 30 * 24 * 3600 } },
    });
  }

  /** The names of the two queues (what the worker's BullMQ Workers consume). */
  get names(): { control: string; webhooks: string } {
    return { control: this.control.name, webhooks: this.webhooks.name };
  }

  /** Errors of the queues' connections (a Redis outage) go to `fn` rather than unhandled. */
  onError(fn: (e: Error) => void): void {
    this.control.on('error', fn);
    this.webhooks.on('error', fn);
  }

  // ---- FinalizeQueue --------------------------------------------------------------------------

  async scheduleFinalize(batchId: string, run: number): Promise<void> {
    await this.control.add('finalize-batch', { batchId }, { jobId: `finalize-${batchId}-${run}` });
  }

  // ---- WebhookOutbox --------------------------------------------------------------------------

  async enqueue(d: { id: string; event: WebhookEvent; url: string; body: unknown; batchId?: string }): Promise<void> {
    const job = await this.webhooks.add(d.event, { url: d.url, body: d.body, ...(d.batchId ? { batchId: d.batchId } : {}) }, { jobId: d.id });
    // Index the delivery under its batch, so its status can be listed without scanning the queue.
    if (d.batchId && job.id) {
      const key = this.keys.batchWebhooks(d.batchId);
      await this.redis.multi().zadd(key, 'NX', Date.now(), job.id).expire(key, WEBHOOK_INDEX_TTL_S).exec();
    }
  }

  /**
   * A batch's deliveries, newest first: `pending` (waiting), `delivering` (being sent), `retrying`
   * (an attempt failed, the next one is scheduled), `delivered`, `failed` (attempts used up), or
   * `expired` (removed from Redis after its retention).
   */
  async deliveries(batchId: string, offset: number, limit: number): Promise<{ total: number; deliveries: WebhookDelivery[] }> {
    const key = this.keys.batchWebhooks(batchId);
    const [total, ids] = await Promise.all([this.redis.zcard(key), this.redis.zrevrange(key, offset, offset + limit - 1)]);
    const deliveries = await Promise.all(
      ids.map(async (id): Promise<WebhookDelivery> => {
        const j = await this.webhooks.getJob(id);
        if (!j) return { id, event: 'job.completed', url: '', state: 'expired', attempts: 0 };
        const state = await j.getState();
        const rv = j.returnvalue as { status?: number } | null;
        return {
          id,
          event: j.name as WebhookEvent,
          url: j.data.url as string,
          state: state === 'completed' ? 'delivered' : state === 'failed' ? 'failed' : state === 'active' ? 'delivering' : j.attemptsMade > 0 ? 'retrying' : 'pending',
          attempts: j.attemptsMade,
          createdAt: new Date(j.timestamp).toISOString(),
          ...(j.failedReason ? { lastError: j.failedReason } : {}),
          ...(state === 'completed' && rv?.status ? { httpStatus: rv.status } : {}),
          ...(state === 'completed' && j.finishedOn ? { deliveredAt: new Date(j.finishedOn).toISOString() } : {}),
        };
      }),
    );
    return { total, deliveries };
  }

  /** Job counts of each queue by state (dashboard, metrics). */
  async jobCounts<S extends JobType>(states: readonly S[]): Promise<{ control: Record<S, number>; webhooks: Record<S, number> }> {
    const [control, webhooks] = await Promise.all([queueJobCounts(this.control, states), queueJobCounts(this.webhooks, states)]);
    return { control, webhooks };
  }

  async close(): Promise<void> {
    await this.control.close();
    await this.webhooks.close();
    releaseConnection(this.own);
  }
}
