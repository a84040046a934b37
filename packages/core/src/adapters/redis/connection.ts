/**
 * Every Redis connection of the fleet is built here, by the role of its user:
 * - `worker`: commands wait out a Redis outage (BullMQ's rule for workers: no per-request retry cap);
 * - `producer`: the CLI and the API fail fast (3 retries per command) instead of hanging;
 * - `reader`: dashboards and scrapes report Redis being down after one retry.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Config } from '../../domain/config';

export type RedisRole = 'worker' | 'producer' | 'reader';

/**
 * A connection as openRedis gives it (the type for code that holds one without importing ioredis).
 * With REDIS_CLUSTER_NODES it is an ioredis `Cluster` under this type: the commands, scripts
 * (defineCommand), MULTI/pipelines, pub/sub and `duplicate()` the project uses are the same on both,
 * and every key of the fleet is in one slot (QUEUE_PREFIX's hash tag), so none is split by the cluster.
 */
export type RedisClient = Redis;

export type RedisConfig = Pick<Config, 'REDIS_URL' | 'REDIS_CLUSTER_NODES'>;

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

/** Whether this config's connections are to a Redis Cluster. */
export function isCluster(config: RedisConfig): boolean {
  return (config.REDIS_CLUSTER_NODES ?? []).length > 0;
}

/**
 * A Cluster client of `role`: seeded from REDIS_CLUSTER_NODES and REDIS_URL's host, with REDIS_URL's
 * user, password and TLS for every node. `extra` (e.g. enableOfflineQueue) applies to the cluster.
 */
export function openCluster(config: RedisConfig, role: RedisRole, extra: Partial<ClusterOptions> = {}): Cluster {
  const url = new URL(config.REDIS_URL);
  const seeds = [`${url.hostname}:${url.port || 6379}`, ...config.REDIS_CLUSTER_NODES].map((hp) => {
    const i = hp.lastIndexOf(':');
    return { host: hp.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(hp.slice(i + 1)) };
  });
  const nodeOptions: RedisOptions = {
    ...redisOptions(role),
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
  };
  return new Cluster(seeds, {
    redisOptions: nodeOptions,
    // A failover moves the slot to a replica: follow MOVED at once, and keep retrying the cluster
    // while no node answers (a worker waits an outage out like it does with one Redis).
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 300,
    clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
    ...(role === 'worker' ? { maxRedirections: 64 } : {}),
    ...extra,
  });
}

/** A connection for `role`; its `error` events are swallowed (a drop surfaces on the commands). */
export function openRedis(config: RedisConfig, role: RedisRole): Redis {
  const redis = isCluster(config) ? (openCluster(config, role) as unknown as Redis) : new Redis(config.REDIS_URL, redisOptions(role));
  redis.on('error', () => {});
  return redis;
}
