/**
 * The batch application (app/batch-service.ts) composed over Redis and BullMQ: the books
 * (RedisBatchStore, JobEnds, RedisFleetLock, RedisBudgetStore; the price table of PRICES_FILE), the transcription jobs (BullmqJobQueue over the
 * cap-bucket FleetQueues) and the control and webhook queues (ControlQueues). The one place the
 * front ends and the worker get a BatchService from.
 */
import type { Redis } from 'ioredis';
import { BatchService } from '../../app/batch-service';
import type { WallClock } from '../../app/deps';
import type { Config } from '../../domain/config';
import type { PriceEntry } from '../../domain/prices';
import type { Storage } from '../../ports/storage';
import { openRedis } from '../redis/connection';
import { RedisBatchStore } from '../redis/batch-store';
import { RedisFleetLock } from '../redis/fleet-lock';
import { JobEnds } from '../redis/job-ends';
import { RedisKeys } from '../redis/keys';
import { RedisBudgetStore } from '../redis/budget-store';
import { loadPrices } from '../price-table';
import { ControlQueues } from './control-queues';
import { FleetQueues } from './fleet-queues';
import { BullmqJobQueue } from './job-queue';

export interface BatchServices {
  service: BatchService;
  fleet: FleetQueues;
  redis: Redis;
  /** The `-control` (finalisations) and `-webhooks` queues: for Bull Board, their counts, their errors. */
  controlQueues: ControlQueues;
  /** Names of the control and webhook queues (the worker consumes them). */
  queueNames: { control: string; webhooks: string };
  /** The pub/sub channel of job ids to abort (the worker subscribes to it). */
  cancelChannel: string;
  /** Close what this composition opened. */
  close(): Promise<void>;
}

/**
 * A BatchService over a connection and a FleetQueues the caller owns (and closes): `close()` closes
 * only the control and webhook queues. `shareConnection` (a worker, whose `redis` waits out outages):
 * the control and webhook queues use `redis` rather than a connection each. `prices`: the operator's
 * price table (the worker's, for the batch summaries' estimated cost; the shipped defaults without it).
 */
export function batchServiceOver(deps: { config: Config; redis: Redis; storage: Storage; fleet: FleetQueues; clock?: WallClock; shareConnection?: boolean; prices?: readonly PriceEntry[] }): BatchServices {
  const { config, redis, storage, fleet } = deps;
  const { base } = RedisKeys.forQueue(config);
  const batches = new RedisBatchStore(redis, base);
  const jobEnds = new JobEnds(redis, base, config.JOB_RETENTION_SECONDS);
  const queue = new BullmqJobQueue(fleet);
  const controlQueues = deps.shareConnection ? new ControlQueues(config, redis, redis) : new ControlQueues(config, redis);
  const service = new BatchService({
    config,
    storage,
    queue,
    batches,
    jobEnds,
    budgets: new RedisBudgetStore(redis, base),
    lock: new RedisFleetLock(redis, base),
    finalizeQueue: controlQueues,
    outbox: controlQueues,
    ...(deps.clock ? { clock: deps.clock } : {}),
    // The price table: budgets' cost figures and the batch summary's (the caller's, else PRICES_FILE's).
    prices: deps.prices ?? loadPrices(config),
  });
  return { service, fleet, redis, controlQueues, queueNames: controlQueues.names, cancelChannel: queue.cancelChannel, close: () => controlQueues.close() };
}

/**
 * A BatchService on a connection of its own (openRedis by `role`) and a FleetQueues of that role;
 * `close()` closes the queues, the fleet and the connection.
 */
export function openBatchService(config: Config, storage: Storage, role: 'producer' | 'worker'): BatchServices {
  const redis = openRedis(config, role);
  const fleet = new FleetQueues(config, redis, role);
  const composed = batchServiceOver({ config, redis, storage, fleet, shareConnection: role === 'worker' });
  return {
    ...composed,
    async close() {
      await composed.close();
      await fleet.close();
      redis.disconnect();
    },
  };
}
