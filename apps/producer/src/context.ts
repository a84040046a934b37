import { Redis } from 'ioredis';
import type { Config } from '@scribe-fleet/core';
import { FleetQueues } from '@scribe-fleet/core/adapters/fleet-queues';
import { S3Storage } from '@scribe-fleet/core/adapters/s3-storage';

export interface ProducerContext {
  config: Config;
  storage: S3Storage;
  fleet: FleetQueues;
  redis: Redis;
  close(): Promise<void>;
}

export function openProducer(config: Config): ProducerContext {
  const storage = new S3Storage({
    region: config.S3_REGION,
    forcePathStyle: config.S3_FORCE_PATH_STYLE,
    ...(config.S3_ENDPOINT ? { endpoint: config.S3_ENDPOINT } : {}),
    ...(config.S3_ACCESS_KEY_ID && config.S3_SECRET_ACCESS_KEY
      ? { accessKeyId: config.S3_ACCESS_KEY_ID, secretAccessKey: config.S3_SECRET_ACCESS_KEY }
      : {}),
  });
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
