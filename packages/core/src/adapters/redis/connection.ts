/**
 * Every Redis connection of the fleet is built here, by the role of its user:
 * - `worker`: commands wait out a Redis outage (BullMQ's rule for workers: no per-request retry cap);
 * - `producer`: the CLI and the API fail fast (3 retries per command) instead of hanging;
 * - `reader`: dashboards and scrapes report Redis being down after one retry.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../../domain/config';

export type RedisRole = 'worker' | 'producer' | 'reader';

/** A connection as openRedis gives it (the type for code that holds one without importing ioredis). */
export type RedisClient = Redis;

/** ioredis options of a role (BullMQ takes these as its `connection`, with the URL). */
export function redisOptions(role: RedisRole): RedisOptions {
  switch (role) {
    case 'worker':
      return { maxRetriesPerRequest: null };
    case 'producer':
      return { maxRetriesPerRequest: 3 };
    case 'reader':
      return { maxRetriesPerRequest: 1 };
  }
}

/** A connection for `role`; its `error` events are swallowed (a drop surfaces on the commands). */
export function openRedis(config: Pick<Config, 'REDIS_URL'>, role: RedisRole): Redis {
  const redis = new Redis(config.REDIS_URL, redisOptions(role));
  redis.on('error', () => {});
  return redis;
}
