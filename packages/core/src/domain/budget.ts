/**
 * Budgets (issue 15): how much audio, or money, a batch, or a provider account per UTC day, may use.
 * Pure. A budget is enforced at admission: before a job's session starts, the job reserves its
 * expected audio (and cost) in every budget it falls under; if a reservation would take a book past
 * its limit, the job is not admitted (no session starts, its batch shows `paused: budget`), and a
 * session already running is never cut. When a job ends, its reservation is replaced by what it
 * actually used (the audio of a completed job; a failed or cancelled job used nothing that counts).
 * The atomic version of `admits` is the Lua script `budget-admit-1.lua` (adapters/redis/budget-store.ts).
 */
import { PROVIDERS, type ProviderName } from './catalogue';
import type { PriceEntry } from './prices';
import { priceFor } from './prices';

/** What a budget allows (a missing field: no limit on it). */
export interface BudgetLimits {
  maxAudioSeconds?: number;
  maxCostUsd?: number;
}

/** A budget's book: what completed jobs used, and what running (admitted) jobs reserved. */
export interface BudgetBook {
  spentSeconds: number;
  spentCostUsd: number;
  reservedSeconds: number;
  reservedCostUsd: number;
}

export const EMPTY_BOOK: BudgetBook = { spentSeconds: 0, spentCostUsd: 0, reservedSeconds: 0, reservedCostUsd: 0 };

/** One job's expected use. */
export interface BudgetUse {
  seconds: number;
  costUsd: number;
}

/** Whether a job expecting `use` may start under `limits` with the book as it stands. */
export function admits(limits: BudgetLimits, book: BudgetBook, use: BudgetUse): boolean {
  if (limits.maxAudioSeconds !== undefined && book.spentSeconds + book.reservedSeconds + use.seconds > limits.maxAudioSeconds + 1e-9) return false;
  if (limits.maxCostUsd !== undefined && book.spentCostUsd + book.reservedCostUsd + use.costUsd > limits.maxCostUsd + 1e-9) return false;
  return true;
}

export function hasLimits(l: BudgetLimits | undefined): l is BudgetLimits {
  return Boolean(l && (l.maxAudioSeconds !== undefined || l.maxCostUsd !== undefined));
}

/** The request's figures (hours, dollars) as limits. */
export function limitsOf(req: { maxAudioHours?: number; maxCost?: number }): BudgetLimits {
  return {
    ...(req.maxAudioHours !== undefined ? { maxAudioSeconds: req.maxAudioHours * 3600 } : {}),
    ...(req.maxCost !== undefined ? { maxCostUsd: req.maxCost } : {}),
  };
}

/**
 * What a job costs for `seconds` of audio, from the price table (PRICES_FILE first, then the
 * defaults); a per-channel price counts each channel when the job asks for one transcript per channel.
 */
export function costOf(prices: readonly PriceEntry[], job: { provider: ProviderName; model: string; mode: 'batch' | 'stream'; channels?: number }, seconds: number): number {
  const p = priceFor(job, prices);
  if (!p) return 0;
  const channels = p.perChannel && job.channels && job.channels > 1 ? job.channels : 1;
  return (seconds / 60) * p.usdPerMinute * channels;
}

/**
 * A job's expected audio when its container states none in its first bytes: its size at 128 kbit/s
 * (16 000 bytes a second), which over-estimates compressed speech (usually 32–64 kbit/s) and
 * under-estimates PCM WAV (whose header states its duration anyway).
 */
export const FALLBACK_BYTES_PER_SECOND = 16_000;

export function estimateFromSize(bytes: number): number {
  return bytes / FALLBACK_BYTES_PER_SECOND;
}

/** The UTC day of `ms` (YYYY-MM-DD): an account's daily budget book. */
export function budgetDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Milliseconds from `ms` to the next UTC midnight (when an account's daily budget starts again). */
export function msToNextDay(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1) - ms;
}

/** An account's daily budget (SCRIBE_BUDGETS). `account` `*`: every account of the provider, each on its own. */
export interface AccountBudget extends BudgetLimits {
  provider: ProviderName;
  account: string;
}

/**
 * SCRIBE_BUDGETS: `provider:account=LIMITS,…` where LIMITS is `<hours>h`, `$<usd>` or both joined
 * by `/` (`deepgram:projA=100h/$40,openai:*=$5`): per UTC day. The most specific entry wins (a named
 * account over `*`). Empty: no account budgets.
 */
export function parseAccountBudgets(text: string): AccountBudget[] {
  const out: AccountBudget[] = [];
  for (const item of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([a-z]+):([A-Za-z0-9_.-]{1,64}|\*)=(.+)$/.exec(item);
    if (!m) throw new Error(`"${item}": expected provider:account=<hours>h/$<usd>`);
    const provider = m[1] as ProviderName;
    if (!(PROVIDERS as readonly string[]).includes(provider)) throw new Error(`"${item}": unknown provider ${m[1]}`);
    const limits: BudgetLimits = {};
    for (const part of m[3]!.split('/')) {
      const h = /^(\d+(?:\.\d+)?)h$/.exec(part);
      const c = /^\$(\d+(?:\.\d+)?)$/.exec(part);
      if (h && limits.maxAudioSeconds === undefined) limits.maxAudioSeconds = Number(h[1]) * 3600;
      else if (c && limits.maxCostUsd === undefined) limits.maxCostUsd = Number(c[1]);
      else throw new Error(`"${item}": limit "${part}" is not <hours>h or $<usd> (each at most once)`);
    }
    if (out.some((b) => b.provider === provider && b.account === m[2])) throw new Error(`"${item}": ${provider}:${m[2]} given twice`);
    out.push({ provider, account: m[2]!, ...limits });
  }
  return out;
}

/** The daily budget an account falls under, if any. */
export function accountBudgetFor(budgets: readonly AccountBudget[], provider: string, account: string): AccountBudget | undefined {
  return budgets.find((b) => b.provider === provider && b.account === account) ?? budgets.find((b) => b.provider === provider && b.account === '*');
}

/** How a batch's budget reads in the API: limits and use in hours and dollars. */
export interface BudgetView {
  maxAudioHours?: number;
  maxCost?: number;
  spentAudioHours: number;
  spentCost: number;
  reservedAudioHours: number;
  reservedCost: number;
}

const round = (x: number, digits: number) => Number(x.toFixed(digits));

export function budgetView(limits: BudgetLimits, book: BudgetBook): BudgetView {
  return {
    ...(limits.maxAudioSeconds !== undefined ? { maxAudioHours: round(limits.maxAudioSeconds / 3600, 6) } : {}),
    ...(limits.maxCostUsd !== undefined ? { maxCost: limits.maxCostUsd } : {}),
    spentAudioHours: round(book.spentSeconds / 3600, 6),
    spentCost: round(book.spentCostUsd, 6),
    reservedAudioHours: round(book.reservedSeconds / 3600, 6),
    reservedCost: round(book.reservedCostUsd, 6),
  };
}
