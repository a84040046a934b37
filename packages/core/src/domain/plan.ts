/**
 * A plan's figures for one (provider, model, mode, account) choice: what the audio will cost and how
 * long the fleet will take under the caps in force, from the measured (or sampled) audio duration.
 * Pure: every input is passed in (app/plan-batch.ts measures, config gives caps and speeds).
 *
 * Wall time:
 * - stream: sessions run at real time, so `audio ÷ cap` (the cap is streams in parallel), and never
 *   less than the longest file;
 * - batch: a session transcribes `speed` audio seconds per second, so `audio ÷ (cap × speed)`, plus
 *   each file's fixed overhead (upload, queueing, writing outputs) spread over the cap.
 * Worker processes: enough to keep the cap busy, `ceil(cap ÷ jobs per process)`; the local recogniser
 * is bounded by CPU (LOCAL_CONCURRENCY per process) and its cap, so that is its count too.
 */
import type { Mode, ProviderName } from './catalogue';
import type { PriceEntry } from './prices';

/** A figure with its 95 % interval (equal ends when it is exact). */
export interface Range {
  estimate: number;
  low: number;
  high: number;
}

/** Batch speed (audio seconds per session second) and per-file overhead (seconds) of a provider. */
export interface SpeedSetting {
  speed: number;
  overheadSeconds: number;
}

/**
 * Defaults: rough figures for sessions of archive-length files, overridable per provider and mode in
 * PLAN_SPEEDS. Hosted batch APIs answer an hour of audio in well under a minute; the embedded
 * recogniser runs near real time on one core; streams are real time by definition.
 */
export const DEFAULT_SPEEDS: Record<ProviderName, Partial<Record<Mode, SpeedSetting>>> = {
  deepgram: { batch: { speed: 120, overheadSeconds: 2 }, stream: { speed: 1, overheadSeconds: 1 } },
  assemblyai: { stream: { speed: 1, overheadSeconds: 1 } },
  fireworks: { stream: { speed: 1, overheadSeconds: 1 } },
  openai: { batch: { speed: 20, overheadSeconds: 3 } },
  local: { batch: { speed: 1, overheadSeconds: 1 }, stream: { speed: 1, overheadSeconds: 1 } },
};

/** The speed of a (provider, mode): PLAN_SPEEDS first (`provider:mode` → setting), then the default. */
export function speedFor(provider: ProviderName, mode: Mode, overrides: Readonly<Record<string, SpeedSetting>> = {}): SpeedSetting {
  return overrides[`${provider}:${mode}`] ?? DEFAULT_SPEEDS[provider][mode] ?? { speed: 1, overheadSeconds: 1 };
}

/** Parse PLAN_SPEEDS: `deepgram:batch=150/2,local:batch=0.8` (speed, optionally `/overhead seconds`). */
export function parseSpeeds(text: string): Record<string, SpeedSetting> {
  const out: Record<string, SpeedSetting> = {};
  for (const item of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([a-z]+):(batch|stream)=([0-9.]+)(?:\/([0-9.]+))?$/.exec(item);
    const speed = Number(m?.[3]);
    const overhead = m?.[4] === undefined ? undefined : Number(m[4]);
    if (!m || !(speed > 0) || (overhead !== undefined && !(overhead >= 0))) throw new Error(`bad speed ${JSON.stringify(item)} (want provider:batch|stream=speed[/overhead seconds], speed > 0)`);
    out[`${m[1]}:${m[2]}`] = { speed, overheadSeconds: overhead ?? speedFor(m[1] as ProviderName, m[2] as Mode).overheadSeconds };
  }
  return out;
}

export interface ChoiceInputs {
  mode: Mode;
  /** Files to transcribe (files already done are not counted). */
  files: number;
  /** Their audio, in seconds. */
  audioSeconds: Range;
  /** The longest file, in seconds (a stream cannot end before it). */
  longestSeconds: number;
  /** The bucket's cap (sessions at once, fleet-wide). */
  cap: number;
  /** Jobs of this bucket one worker process runs at once. */
  perWorker: number;
  speed: SpeedSetting;
  price: PriceEntry | null;
  /** Channels billed per file when the job asks for one transcript per channel (1 otherwise). */
  billedChannels?: number;
}

export interface ChoiceFigures {
  /** US dollars; null when the price table has no entry for the choice. */
  costUsd: Range | null;
  wallSeconds: Range;
  /** Worker processes that keep the cap busy. */
  workers: number;
}

const round = (n: number, places: number) => Math.round(n * 10 ** places) / 10 ** places;

/** The cost, time and worker figures of one choice. */
export function choiceFigures(c: ChoiceInputs): ChoiceFigures {
  const cap = Math.max(1, c.cap);
  const wall = (audio: number) => {
    if (c.files === 0) return 0;
    const overhead = (c.files * c.speed.overheadSeconds) / cap;
    const t = c.mode === 'stream' ? audio / cap : audio / (cap * c.speed.speed);
    return round(Math.max(t + overhead, c.mode === 'stream' ? c.longestSeconds : c.longestSeconds / c.speed.speed), 1);
  };
  const channels = c.price?.perChannel ? Math.max(1, c.billedChannels ?? 1) : 1;
  const cost = (audio: number) => round((audio / 60) * (c.price?.usdPerMinute ?? 0) * channels, 2);
  return {
    costUsd: c.price ? { estimate: cost(c.audioSeconds.estimate), low: cost(c.audioSeconds.low), high: cost(c.audioSeconds.high) } : null,
    wallSeconds: { estimate: wall(c.audioSeconds.estimate), low: wall(c.audioSeconds.low), high: wall(c.audioSeconds.high) },
    workers: c.files === 0 ? 0 : Math.ceil(Math.min(cap, c.files) / Math.max(1, c.perWorker)),
  };
}

/** A plan id: `plan_` and 16 hex digits (what `newPlanId` makes; route schemas and validate.ts check it). */
export const PLAN_ID_PATTERN = '^plan_[0-9a-f]{16}$';
const PLAN_ID_RE = new RegExp(PLAN_ID_PATTERN);

/** Whether `id` has the shape of a plan id. */
export function isPlanId(id: unknown): boolean {
  return typeof id === 'string' && PLAN_ID_RE.test(id);
}
