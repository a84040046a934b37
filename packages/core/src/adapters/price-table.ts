/**
 * The operator's price table (PRICES_FILE), read once by a composition root: the plans (plan-services.ts),
 * the usage answers (usage-services.ts) and the worker's batch summaries (bullmq/worker-host.ts).
 */
import { readFileSync } from 'node:fs';
import type { Config } from '../domain/config';
import { ConfigError } from '../domain/errors';
import { parsePriceTable, type PriceEntry } from '../domain/prices';

/** The operator's price table (PRICES_FILE), or none; a file that cannot be read or parsed is a ConfigError. */
export function loadPrices(config: Pick<Config, 'PRICES_FILE'>): PriceEntry[] {
  if (!config.PRICES_FILE) return [];
  try {
    return parsePriceTable(readFileSync(config.PRICES_FILE, 'utf8'));
  } catch (e) {
    throw new ConfigError(`PRICES_FILE ${config.PRICES_FILE}: ${(e as Error).message}`);
  }
}
