/**
 * Cap buckets: the unit of a provider's concurrency limit, keyed by
 * (provider, account/project, model class, mode). Pure: derives keys and resolves caps from config.
 *
 * Deepgram limits apply per Deepgram *project*: 100 concurrent pre-recorded requests for
 * Nova/Base/Enhanced, Whisper Cloud 5 (pay-as-you-go) or 15 (paid), and a separate streaming cap (50 in
 * newer docs, 100 in older ones). Provider limits drift, so every number here is a default that
 * configuration overrides, and a 429 from the provider is the final authority (see the limiter).
 */
import type { Mode, ProviderName } from './catalogue';

export interface CapBucket {
  provider: ProviderName;
  account: string;
  modelClass: string;
  mode: Mode;
}

/**
 * The model class of a (provider, model). Deepgram's non-Whisper models (nova-3, nova-2, nova,
 * enhanced, base) share one class: the published limits are per model, but a project using several
 * at once must not count on 100 each, so we budget them together (override with a per-model bucket
 * in SCRIBE_CAPS if your plan says otherwise).
 */
export function modelClass(provider: ProviderName, model: string): string {
  if (provider === 'deepgram') return model.startsWith('whisper') ? 'whisper' : 'nova';
  return 'default';
}

export function capBucketOf(spec: { provider: ProviderName; account: string; model: string; mode: Mode }): CapBucket {
  return { provider: spec.provider, account: spec.account, modelClass: modelClass(spec.provider, spec.model), mode: spec.mode };
}

/** `provider:account:modelClass:mode`; accounts are restricted to [A-Za-z0-9_.-]. */
export function capBucketKey(b: CapBucket): string {
  return `${b.provider}:${b.account}:${b.modelClass}:${b.mode}`;
}

export function parseCapBucketKey(key: string): CapBucket | null {
  const parts = key.split(':');
  if (parts.length !== 4) return null;
  const [provider, account, modelClass, mode] = parts as [ProviderName, string, string, Mode];
  return { provider, account, modelClass, mode };
}

/** BullMQ queue for a bucket: `<base>.<provider>.<account>.<class>.<mode>` (no `:` in queue names). */
export function bucketQueueName(base: string, b: CapBucket): string {
  return `${base}.${b.provider}.${b.account}.${b.modelClass}.${b.mode}`;
}

export type WhisperPlan = 'payg' | 'paid';

export interface CapSettings {
  /** Deepgram Whisper Cloud plan: 5 concurrent on pay-as-you-go, 15 on paid plans. */
  deepgramWhisperPlan: WhisperPlan;
  /** Deepgram live streams per project (50 in newer docs, 100 in older). */
  deepgramStreamCap: number;
  /** Overrides: bucket key → cap; `*` matches any account (`deepgram:*:nova:batch`). */
  overrides: Record<string, number>;
}

export const DEFAULT_CAPS: Record<ProviderName, Partial<Record<Mode, number>>> = {
  deepgram: { batch: 100 },
  assemblyai: { stream: 100 },
  fireworks: { stream: 50 },
  openai: { batch: 50 },
  local: { batch: 64, stream: 64 },
};

/** The configured cap of a bucket: exact override, then account wildcard, then the provider default. */
export function capFor(b: CapBucket, s: CapSettings): number {
  const exact = s.overrides[capBucketKey(b)];
  if (exact !== undefined) return exact;
  const wild = s.overrides[capBucketKey({ ...b, account: '*' })];
  if (wild !== undefined) return wild;
  if (b.provider === 'deepgram') {
    if (b.modelClass === 'whisper') return s.deepgramWhisperPlan === 'paid' ? 15 : 5;
    if (b.mode === 'stream') return s.deepgramStreamCap;
  }
  return DEFAULT_CAPS[b.provider][b.mode] ?? 1;
}

/** Parse `SCRIBE_CAPS`: `deepgram:projA:nova:batch=80,openai:*:default:batch=10` (or a JSON object). */
export function parseCapOverrides(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  const trimmed = text.trim();
  if (!trimmed) return out;
  const entries: Array<[string, unknown]> = trimmed.startsWith('{')
    ? Object.entries(JSON.parse(trimmed) as Record<string, unknown>)
    : trimmed.split(',').map((kv) => {
        const eq = kv.lastIndexOf('=');
        return [kv.slice(0, eq).trim(), kv.slice(eq + 1).trim()];
      });
  for (const [key, raw] of entries) {
    const n = Number(raw);
    if (!parseCapBucketKey(key) || !Number.isInteger(n) || n < 1) throw new Error(`bad cap override ${JSON.stringify(key)}=${JSON.stringify(raw)} (want provider:account:class:mode=positive integer)`);
    out[key] = n;
  }
  return out;
}

/**
 * Jobs of a bucket that may be active fleet-wide: the cap plus a prefetch of prepared jobs waiting for
 * a slot, so a freed slot is taken at once even when many free together (sessions that started
 * together end together). The prefetch is a fraction of the cap, at least `min`.
 */
export function activeLimit(cap: number, prefetchRatio: number, prefetchMin: number): number {
  return cap + Math.max(prefetchMin, Math.ceil(cap * prefetchRatio));
}

/** Unfinished jobs a drip feed keeps in a bucket's queue: BACKLOG_PER_BUCKET, or (0) max(1 000, 4 × its active limit). */
export function backlogWindow(configured: number, bucketActiveLimit: number): number {
  return configured > 0 ? configured : Math.max(1000, 4 * bucketActiveLimit);
}

/** Jobs of one bucket a worker process runs at once: CPU-bound local recognition vs I/O-bound sessions. */
export function perWorkerConcurrency(bucket: CapBucket, activeLimit: number, workerConcurrency: number, localConcurrency: number): number {
  if (bucket.provider === 'local') return localConcurrency;
  return Math.max(1, Math.min(workerConcurrency, activeLimit));
}

/** Everything a bucket's numbers depend on (from config: see `fleetCapSettings` in config.ts). */
export interface FleetCapSettings extends CapSettings {
  /** QUEUE_NAME: the base of every bucket queue's name. */
  queueBase: string;
  prefetchRatio: number;
  prefetchMin: number;
  workerConcurrency: number;
  localConcurrency: number;
}

/**
 * A cap bucket with every number the fleet derives from it, resolved once from config: the queue
 * (its name), the limiter (key, cap), the queue's global concurrency (activeLimit), the worker
 * (perWorker) and the dashboard (all of them) read the same value instead of deriving their own.
 */
export interface ResolvedBucket {
  bucket: CapBucket;
  /** `provider:account:modelClass:mode`: the limiter's and the metrics' name for it. */
  key: string;
  queueName: string;
  /** The configured cap (provider's concurrency limit). */
  cap: number;
  /** Jobs allowed active fleet-wide: the cap plus the prefetch. */
  activeLimit: number;
  /** Jobs of the bucket one worker process runs at once. */
  perWorker: number;
}

/** Resolve a bucket against the settings (pure). */
export function resolveBucket(bucket: CapBucket, s: FleetCapSettings): ResolvedBucket {
  const cap = capFor(bucket, s);
  const limit = activeLimit(cap, s.prefetchRatio, s.prefetchMin);
  return {
    bucket,
    key: capBucketKey(bucket),
    queueName: bucketQueueName(s.queueBase, bucket),
    cap,
    activeLimit: limit,
    perWorker: perWorkerConcurrency(bucket, limit, s.workerConcurrency, s.localConcurrency),
  };
}

/** The fleet's buckets under one set of settings, each resolved once (memoised by key). */
export class CapBuckets {
  private readonly byKey = new Map<string, ResolvedBucket>();
  constructor(readonly settings: FleetCapSettings) {}

  resolve(bucket: CapBucket): ResolvedBucket {
    const key = capBucketKey(bucket);
    let r = this.byKey.get(key);
    if (!r) {
      r = resolveBucket(bucket, this.settings);
      this.byKey.set(key, r);
    }
    return r;
  }

  /** The bucket a job's spec runs in. */
  of(spec: { provider: ProviderName; account: string; model: string; mode: Mode }): ResolvedBucket {
    return this.resolve(capBucketOf(spec));
  }

  /** A bucket by its key (`provider:account:modelClass:mode`); null for a malformed key. */
  fromKey(key: string): ResolvedBucket | null {
    const b = parseCapBucketKey(key);
    return b ? this.resolve(b) : null;
  }
}
