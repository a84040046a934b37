import { Redis } from 'ioredis';
import type { Config } from '@scribe-fleet/core';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import type { S3Storage } from '@scribe-fleet/core/adapters/s3/s3-storage';
import { s3StorageFromConfig } from '@scribe-fleet/core/app/bootstrap';

export interface ProducerContext {
  config: Config;
  storage: S3Storage;
  fleet: FleetQueues;
  redis: Redis;
  close(): Promise<void>;
}

export function openProducer(config: Config): ProducerContext {
  const storage = s3StorageFromConfig(config);
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 3 });
  const fleet = new FleetQueues(config, redis, 'producer');
  return {
    config,
    storage,
    fleet,
    redis,
    async close() {
      await fleet.close();
      redis.disconnect();
    },
  };
}
