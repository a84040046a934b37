export * from './s3-storage';
export * from './redis-limiter';
export * from './fleet-queues';
