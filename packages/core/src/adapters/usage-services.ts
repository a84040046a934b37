/**
 * The usage read (app/usage.ts) composed for a front end: the usage book over its Redis connection
 * and the price table (PRICES_FILE read once; a bad file is a ConfigError naming it).
 */
import type { Config } from '../domain/config';
import { readUsage, type UsageReport } from '../app/usage';
import type { UsageQuery } from '../app/validate';
import type { RedisClient } from './redis/connection';
import { RedisUsageBook } from './redis/usage-book';
import { loadPrices } from './price-table';

export interface UsageServices {
  read(q: UsageQuery): Promise<UsageReport>;
}

export function openUsage(deps: { config: Config; redis: RedisClient }): UsageServices {
  const usageDeps = { usage: new RedisUsageBook(deps.redis, deps.config), prices: loadPrices(deps.config) };
  return { read: (q) => readUsage(usageDeps, q) };
}
