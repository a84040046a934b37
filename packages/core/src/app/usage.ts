/**
 * Reading the usage book (issue 15): `GET /v1/usage` and `scribe usage`. The query is checked
 * (validate.ts), the days' records read (UsageStore), then filtered, summed by day or by batch and
 * priced from the price table as it is now (domain/usage.ts): a cost is an estimate at read time,
 * not what was billed.
 */
import { usageDay, usageRows, type UsageBy, type UsageRow, type UsageTotals } from '../domain/usage';
import type { PriceEntry } from '../domain/prices';
import type { UsageStore } from '../ports/usage-store';
import type { WallClock } from './deps';
import { validateUsageQuery, type UsageQuery } from './validate';

export interface UsageDeps {
  usage: UsageStore;
  /** The operator's price table (PRICES_FILE), read before the shipped defaults. */
  prices: readonly PriceEntry[];
  /** Today is this clock's (default: the system's). */
  clock?: WallClock;
}

export interface UsageReport {
  from: string;
  to: string;
  by: UsageBy;
  filter: { account?: string; provider?: string; model?: string };
  rows: UsageRow[];
  totals: UsageTotals;
}

export async function readUsage(deps: UsageDeps, q: UsageQuery): Promise<UsageReport> {
  const today = usageDay(deps.clock ? deps.clock.now() : Date.now());
  const v = validateUsageQuery(q, today);
  const records = await deps.usage.read(v.days, v.by);
  const { rows, totals } = usageRows(records, v.by, v.filter, deps.prices);
  return { from: v.from, to: v.to, by: v.by, filter: v.filter, rows, totals };
}
