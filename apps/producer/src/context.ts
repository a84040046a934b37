import type { Config } from '@scribe-fleet/core';
import type { BatchService } from '@scribe-fleet/core/app/batch-service';
import type { ControlQueues } from '@scribe-fleet/core/adapters/bullmq/control-queues';
import type { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { openBatchService } from '@scribe-fleet/core/adapters/bullmq/open-services';
import type { RedisClient } from '@scribe-fleet/core/adapters/redis/connection';
import type { S3Storage } from '@scribe-fleet/core/adapters/s3/s3-storage';
import { s3StorageFromConfig } from '@scribe-fleet/core/adapters/bootstrap';

export interface ProducerContext {
  config: Config;
  storage: S3Storage;
  fleet: FleetQueues;
  redis: RedisClient;
  /** The batch application (create, read, cancel, redrive, webhooks). */
  service: BatchService;
  /** The control and webhook queues (Bull Board, their counts, their errors). */
  controlQueues: ControlQueues;
  close(): Promise<void>;
}

/** Redis (the producer's connection: fails fast), the cap-bucket queues, S3 and the BatchService over them. */
export function openProducer(config: Config): ProducerContext {
  const storage = s3StorageFromConfig(config);
  const { service, fleet, redis, controlQueues, close } = openBatchService(config, storage, 'producer');
  return { config, storage, fleet, redis, service, controlQueues, close };
}
