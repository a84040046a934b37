/**
 * What an audio minute costs on each (provider, model, mode): the price table a plan's cost figures
 * come from. Pure. The shipped defaults are list prices for pay-as-you-go accounts, each with where it
 * was read and when; prices drift and contracts differ, so an operator's file (`PRICES_FILE`, the same
 * shape, validated by `parsePriceTable`) is read first and the defaults only fill what it leaves out.
 */
import { z } from 'zod';
import { PROVIDERS, MODES, type Mode, type ProviderName } from './catalogue';

export interface PriceEntry {
  provider: ProviderName;
  /** A model id, or a prefix ending in `*` (`nova-2*`), or `*` for every model of the provider. */
  model: string;
  mode: Mode;
  /** US dollars per minute of audio. */
  usdPerMinute: number;
  /** Billed once per channel when the job asks for one transcript per channel (`multichannel`). */
  perChannel?: boolean;
  /** Where the figure comes from. */
  source: string;
  /** When it was read there (YYYY-MM-DD). */
  asOf: string;
}

const DG = 'deepgram.com/pricing, pay-as-you-go list price';
const ASOF = '2026-12-07';

/**
 * Defaults. Read from the providers' public pricing pages as quoted in public material available to
 * this project offline on 2026-12-07 (not checked against the live pages from this machine): confirm
 * them for your account and override them in `PRICES_FILE`.
 */
export const DEFAULT_PRICES: readonly PriceEntry[] = [
  { provider: 'deepgram', model: 'nova-3*', mode: 'batch', usdPerMinute: 0.0043, perChannel: true, source: DG, asOf: ASOF },
  { provider: 'deepgram', model: 'nova-3*', mode: 'stream', usdPerMinute: 0.0077, perChannel: true, source: DG, asOf: ASOF },
  { provider: 'deepgram', model: 'nova-2*', mode: 'batch', usdPerMinute: 0.0043, perChannel: true, source: DG, asOf: ASOF },
  { provider: 'deepgram', model: 'nova-2*', mode: 'stream', usdPerMinute: 0.0058, perChannel: true, source: DG, asOf: ASOF },
  { provider: 'deepgram', model: 'nova', mode: 'batch', usdPerMinute: 0.0043, perChannel: true, source: DG, asOf: ASOF },
  { provider: 'deepgram', model: 'enhanced*', mode: 'batch', usdPerMinute: 0.0145, perChannel: true, source: DG, asOf: ASOF },
  { provider: 'deepgram', model: 'base*', mode: 'batch', usdPerMinute: 0.0125, perChannel: true, source: DG, asOf: ASOF },
  { provider: 'deepgram', model: 'whisper*', mode: 'batch', usdPerMinute: 0.0048, perChannel: true, source: DG, asOf: ASOF },
  // Any other Deepgram model: the Nova-3 figures (the default model), so a plan never shows $0 for it.
  { provider: 'deepgram', model: '*', mode: 'batch', usdPerMinute: 0.0043, perChannel: true, source: `${DG} (Nova-3 figure)`, asOf: ASOF },
  { provider: 'deepgram', model: '*', mode: 'stream', usdPerMinute: 0.0077, perChannel: true, source: `${DG} (Nova-3 figure)`, asOf: ASOF },
  { provider: 'assemblyai', model: '*', mode: 'stream', usdPerMinute: 0.0025, source: 'assemblyai.com/pricing, Universal-Streaming $0.15/h', asOf: ASOF },
  { provider: 'fireworks', model: '*', mode: 'stream', usdPerMinute: 0.0032, source: 'fireworks.ai/pricing, streaming speech-to-text', asOf: ASOF },
  { provider: 'openai', model: 'gpt-4o-mini-transcribe*', mode: 'batch', usdPerMinute: 0.003, source: 'openai.com/api/pricing', asOf: ASOF },
  { provider: 'openai', model: '*', mode: 'batch', usdPerMinute: 0.006, source: 'openai.com/api/pricing, whisper-1 / gpt-4o-transcribe', asOf: ASOF },
  // The embedded recogniser: no provider bill (the workers' own machines are the cost).
  { provider: 'local', model: '*', mode: 'batch', usdPerMinute: 0, source: 'embedded recogniser: no provider bill', asOf: ASOF },
  { provider: 'local', model: '*', mode: 'stream', usdPerMinute: 0, source: 'embedded recogniser: no provider bill', asOf: ASOF },
];

const PriceEntrySchema = z
  .object({
    provider: z.enum(PROVIDERS),
    model: z.string().min(1).max(200),
    mode: z.enum(MODES),
    usdPerMinute: z.number().finite().nonnegative(),
    perChannel: z.boolean().optional(),
    source: z.string().min(1).max(500),
    asOf: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date YYYY-MM-DD'),
  })
  .strict();

/** Parse an operator's price file (a JSON array of entries); throws naming the first bad entry. */
export function parsePriceTable(text: string): PriceEntry[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`not JSON (${(e as Error).message})`);
  }
  const parsed = z.array(PriceEntrySchema).max(10_000).safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`entry ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data as PriceEntry[];
}

function modelMatches(pattern: string, model: string): boolean {
  if (pattern === '*') return true;
  return pattern.endsWith('*') ? model.startsWith(pattern.slice(0, -1)) : pattern === model;
}

/** How specific a pattern is: an exact id beats a longer prefix beats a shorter one beats `*`. */
function specificity(pattern: string): number {
  return pattern.endsWith('*') ? pattern.length - 1 : Number.MAX_SAFE_INTEGER;
}

/**
 * The price of a (provider, model, mode): the most specific entry of `overrides` that matches, else of
 * the defaults; null when neither has one (the plan then says the cost is unknown).
 */
export function priceFor(choice: { provider: ProviderName; model: string; mode: Mode }, overrides: readonly PriceEntry[] = [], defaults: readonly PriceEntry[] = DEFAULT_PRICES): PriceEntry | null {
  for (const table of [overrides, defaults]) {
    const hits = table.filter((e) => e.provider === choice.provider && e.mode === choice.mode && modelMatches(e.model, choice.model));
    if (hits.length) return hits.reduce((best, e) => (specificity(e.model) > specificity(best.model) ? e : best));
  }
  return null;
}
