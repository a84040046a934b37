import type { UsageBy, UsageIncrement, UsageRecord } from '../domain/usage';

/**
 * The usage book (domain/usage.ts): the workers add to it as sessions start and attempts end; the
 * front ends read it back by day or by batch for a range of days.
 */
export interface UsageStore {
  /** Add one increment to its day (and to its batch's part of that day, when it names a batch). */
  add(inc: UsageIncrement): Promise<void>;
  /**
   * The stored records of these days (YYYY-MM-DD): per (day, key) for `day`, per (day, batch, key)
   * for `batch`. Unaggregated; app/usage.ts filters, sums and prices them.
   */
  read(days: readonly string[], by: UsageBy): Promise<UsageRecord[]>;
}
