/**
 * The usage book (issue 15): what the workers used, per UTC day and per batch, per (provider, model,
 * mode, account): audio seconds of completed jobs, provider sessions started, attempts ended, jobs
 * completed / failed / cancelled. Pure: the increments an attempt's events make, the day arithmetic,
 * the aggregation of stored records into rows, and their estimated cost from the price table at
 * read time (domain/prices.ts). Kept by the workers through the UsageStore port
 * (adapters/redis/usage-book.ts), read by `GET /v1/usage` and `scribe usage` (app/usage.ts).
 */
import type { Mode, ProviderName } from './catalogue';
import type { JobOutcome } from './attempt';
import { isBatchId } from './batch';
import { priceFor, type PriceEntry } from './prices';

/** What a usage figure is kept per: the job's routing. */
export interface UsageKey {
  provider: string;
  model: string;
  mode: string;
  account: string;
}

/** The figures of one (day or batch, key). */
export interface UsageCounts {
  /** Audio seconds of completed jobs, counted once per job (its first end). */
  audioSeconds: number;
  /** Provider sessions started (a rate-limited retry inside an attempt starts another). */
  sessions: number;
  /** Attempt ends: completed, failed, cancelled, retried or re-scheduled after a rate limit. */
  attempts: number;
  completed: number;
  failed: number;
  cancelled: number;
}

export const USAGE_METRICS = ['audioSeconds', 'sessions', 'attempts', 'completed', 'failed', 'cancelled'] as const satisfies ReadonlyArray<keyof UsageCounts>;
export type UsageMetric = (typeof USAGE_METRICS)[number];

/** One write to the book: the figures to add under a key, on a day, and for a batch when the job has one. */
export interface UsageIncrement {
  /** UTC day (YYYY-MM-DD) the event happened on (the writer's clock). */
  day: string;
  key: UsageKey;
  /** The job's batch (only a well-formed batch id is booked per batch). */
  batchId?: string;
  counts: Partial<UsageCounts>;
}

/** One stored record as the store reads it back: a day's figures for a key, per batch or not. */
export interface UsageRecord {
  day: string;
  batchId?: string;
  key: UsageKey;
  counts: UsageCounts;
}

export type UsageBy = 'day' | 'batch';

/** One row of a usage answer. */
export type UsageRow = ({ day: string } | { batchId: string }) &
  UsageKey &
  UsageCounts & {
    /** audioSeconds / 60 × the price table's USD per minute for (provider, model, mode); null when it has none. */
    estimatedCostUsd: number | null;
    usdPerMinute: number | null;
  };

export interface UsageTotals extends UsageCounts {
  /** The sum of the rows' estimates (rows without a price count 0: see `unpriced`). */
  estimatedCostUsd: number;
  /** Rows whose (provider, model, mode) the price table has no entry for. */
  unpriced: number;
}

export function zeroCounts(): UsageCounts {
  return { audioSeconds: 0, sessions: 0, attempts: 0, completed: 0, failed: 0, cancelled: 0 };
}

/** The UTC day of a time (ms since the epoch), YYYY-MM-DD. */
export function usageDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

const DAY_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Whether `s` is a real calendar day written YYYY-MM-DD (2026-02-30 is not). */
export function isUsageDay(s: unknown): s is string {
  if (typeof s !== 'string' || !DAY_RE.test(s)) return false;
  const t = Date.parse(`${s}T00:00:00Z`);
  return Number.isFinite(t) && usageDay(t) === s;
}

/** Every day from `from` to `to`, both included (YYYY-MM-DD; `from` ≤ `to`). */
export function daysBetween(from: string, to: string): string[] {
  const out: string[] = [];
  const end = Date.parse(`${to}T00:00:00Z`);
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= end; t += 86_400_000) out.push(usageDay(t));
  return out;
}

/** The day `n` days before `day` (YYYY-MM-DD). */
export function dayMinus(day: string, n: number): string {
  return usageDay(Date.parse(`${day}T00:00:00Z`) - n * 86_400_000);
}

/** The key of a job's usage from its spec. */
export function usageKeyOf(spec: { provider: string; model: string; mode: string; account: string }): UsageKey {
  return { provider: spec.provider, model: spec.model, mode: spec.mode, account: spec.account };
}

/** The batch id a job's usage is booked under, when its spec names a well-formed one. */
function batchOf(spec: { batchId?: string | undefined }): { batchId?: string } {
  return spec.batchId && isBatchId(spec.batchId) ? { batchId: spec.batchId } : {};
}

/** A provider session started for a job. */
export function sessionIncrement(spec: UsageKey & { batchId?: string | undefined }, now: number): UsageIncrement {
  return { day: usageDay(now), key: usageKeyOf(spec), ...batchOf(spec), counts: { sessions: 1 } };
}

/**
 * An attempt of a job ended (the worker host's `ended`): one attempt, and for a job's end the job
 * completed (with its audio seconds), failed or cancelled. The host calls it once per attempt end and
 * only with a job's first end, so audio seconds count once per job.
 */
export function attemptIncrement(spec: UsageKey & { batchId?: string | undefined }, outcome: Pick<JobOutcome, 'outcome' | 'audioSeconds'>, now: number): UsageIncrement {
  const counts: Partial<UsageCounts> = { attempts: 1 };
  if (outcome.outcome === 'completed') {
    counts.completed = 1;
    if (outcome.audioSeconds && outcome.audioSeconds > 0) counts.audioSeconds = outcome.audioSeconds;
  } else if (outcome.outcome === 'failed') counts.failed = 1;
  else if (outcome.outcome === 'cancelled') counts.cancelled = 1;
  return { day: usageDay(now), key: usageKeyOf(spec), ...batchOf(spec), counts };
}

export interface UsageFilter {
  account?: string;
  provider?: string;
  model?: string;
}

const round6 = (n: number) => Math.round(n * 1e6) / 1e6;

/** The estimated cost of `audioSeconds` at a price (USD per minute), rounded to a millionth of a dollar. */
export function estimatedCost(audioSeconds: number, usdPerMinute: number): number {
  return round6((audioSeconds / 60) * usdPerMinute);
}

function keyString(k: UsageKey): string {
  return JSON.stringify([k.provider, k.model, k.mode, k.account]);
}

/**
 * Rows of an answer from stored records: filtered, summed per (day, key) or per (batch, key) over the
 * days read, priced from the table (`overrides` first, then the shipped defaults), sorted by day or
 * batch id then key; with their totals. A batch's row covers the days read only (a batch that ran
 * over midnight and is read for one day shows that day's part).
 */
export function usageRows(records: readonly UsageRecord[], by: UsageBy, filter: UsageFilter, overrides: readonly PriceEntry[] = []): { rows: UsageRow[]; totals: UsageTotals } {
  const groups = new Map<string, { head: { day: string } | { batchId: string }; key: UsageKey; counts: UsageCounts }>();
  for (const r of records) {
    if (filter.account !== undefined && r.key.account !== filter.account) continue;
    if (filter.provider !== undefined && r.key.provider !== filter.provider) continue;
    if (filter.model !== undefined && r.key.model !== filter.model) continue;
    if (by === 'batch' && !r.batchId) continue;
    if (by === 'day' && r.batchId) continue;
    const head = by === 'day' ? { day: r.day } : { batchId: r.batchId! };
    const id = `${by === 'day' ? r.day : r.batchId!}\n${keyString(r.key)}`;
    let g = groups.get(id);
    if (!g) groups.set(id, (g = { head, key: r.key, counts: zeroCounts() }));
    for (const m of USAGE_METRICS) g.counts[m] += r.counts[m];
  }
  const totals: UsageTotals = { ...zeroCounts(), estimatedCostUsd: 0, unpriced: 0 };
  const rows: UsageRow[] = [...groups.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, g]) => {
      const price = priceFor({ provider: g.key.provider as ProviderName, model: g.key.model, mode: g.key.mode as Mode }, overrides);
      const counts = { ...g.counts, audioSeconds: round6(g.counts.audioSeconds) };
      const cost = price ? estimatedCost(counts.audioSeconds, price.usdPerMinute) : null;
      for (const m of USAGE_METRICS) totals[m] += counts[m];
      if (cost === null) totals.unpriced += 1;
      else totals.estimatedCostUsd += cost;
      return { ...g.head, ...g.key, ...counts, estimatedCostUsd: cost, usdPerMinute: price ? price.usdPerMinute : null };
    });
  totals.audioSeconds = round6(totals.audioSeconds);
  totals.estimatedCostUsd = round6(totals.estimatedCostUsd);
  return { rows, totals };
}
