export * from './s3-storage';
export * from './redis-limiter';
