export * from './s3/s3-storage';
export * from './redis/redis-limiter';
export * from './bullmq/fleet-queues';
