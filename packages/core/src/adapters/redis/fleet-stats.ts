import type { Redis } from 'ioredis';
import type { Config } from '../../domain/config';
import type { JobOutcome, JobOutcomeKind } from '../../domain/attempt';
import { FleetStatsKeys } from './keys';

// The outcome of an attempt is the domain's (domain/attempt.ts); re-exported for existing importers.
export type { JobOutcome, JobOutcomeKind };

/** Counts of one minute or one hour of the fleet's history. */
export interface FleetPeriod {
  /** Start of the period (ms since the epoch). */
  t: number;
  completed: number;
  failed: number;
  cancelled: number;
  retried: number;
  rateLimited: number;
  audioSeconds: number;
}

export interface FleetHistory {
  /** The last `minutes` minutes, oldest first, the current (partial) minute last. */
  minutes: FleetPeriod[];
  /** The last `hours` hours, oldest first, the current (partial) hour last. */
  hours: FleetPeriod[];
  /** Jobs failed for good over the hours window, by error code. */
  failuresByCode: Record<string, number>;
}

export interface FleetStatsOptions {
  /** How long per-minute counters are kept (default 3 h: the dashboard shows the last hour). */
  minuteTtlSeconds?: number;
  /** How long per-hour counters are kept (default 8 days). */
  hourTtlSeconds?: number;
}

const MINUTE = 60_000;
const HOUR = 3_600_000;
const OUTCOME_FIELD: Record<JobOutcomeKind, keyof Omit<FleetPeriod, 't' | 'audioSeconds'>> = {
  completed: 'completed',
  failed: 'failed',
  cancelled: 'cancelled',
  retry: 'retried',
  rate_limited: 'rateLimited',
};

/**
 * Fleet-wide history for the dashboard: per-minute and per-hour counters in Redis that every worker
 * increments when an attempt ends (jobs completed, failed by error code, cancelled, retried,
 * rate-limited, audio seconds). Prometheus keeps the real time series; these exist so the built-in
 * dashboard shows fleet totals without one. Keys are bounded: one hash per minute (kept
 * `minuteTtlSeconds`) and per hour (kept `hourTtlSeconds`) per queue name, all under one hash tag so
 * a write is one MULTI even on Redis Cluster:
 *   <QUEUE_PREFIX>:{<QUEUE_NAME>:fleet}:m:<minutes since epoch>   hash
 *   <QUEUE_PREFIX>:{<QUEUE_NAME>:fleet}:h:<hours since epoch>     hash
 * (spelled in redis/keys.ts). Times are the writer's wall clock (a skew of seconds between hosts
 * only blurs minute edges).
 */
export class FleetStats {
  private readonly keys: FleetStatsKeys;
  private readonly minuteTtl: number;
  private readonly hourTtl: number;

  constructor(
    private readonly redis: Redis,
    config: Pick<Config, 'QUEUE_PREFIX' | 'QUEUE_NAME'>,
    opts: FleetStatsOptions = {},
  ) {
    this.keys = new FleetStatsKeys(config);
    this.minuteTtl = opts.minuteTtlSeconds ?? 3 * 3600;
    this.hourTtl = opts.hourTtlSeconds ?? 8 * 24 * 3600;
  }

  minuteKey(t: number): string {
    return this.keys.minute(Math.floor(t / MINUTE));
  }
  hourKey(t: number): string {
    return this.keys.hour(Math.floor(t / HOUR));
  }

  async record(o: JobOutcome, now = Date.now()): Promise<void> {
    const m = this.redis.multi();
    for (const [key, ttl] of [
      [this.minuteKey(now), this.minuteTtl],
      [this.hourKey(now), this.hourTtl],
    ] as const) {
      m.hincrby(key, OUTCOME_FIELD[o.outcome], 1);
      if (o.outcome === 'failed') m.hincrby(key, `code:${o.code ?? 'INTERNAL'}`, 1);
      if (o.audioSeconds) m.hincrbyfloat(key, 'audioSeconds', o.audioSeconds);
      m.expire(key, ttl);
    }
    await m.exec();
  }

  /** The last `minutes` minutes and `hours` hours (zero-filled), and failures by code over the hours. */
  async read(opts: { minutes?: number; hours?: number; now?: number } = {}): Promise<FleetHistory> {
    const now = opts.now ?? Date.now();
    const nMinutes = Math.max(1, Math.min(opts.minutes ?? 60, Math.floor(this.minuteTtl / 60)));
    const nHours = Math.max(1, Math.min(opts.hours ?? 24, Math.floor(this.hourTtl / 3600)));
    const minuteStarts = Array.from({ length: nMinutes }, (_, i) => (Math.floor(now / MINUTE) - (nMinutes - 1 - i)) * MINUTE);
    const hourStarts = Array.from({ length: nHours }, (_, i) => (Math.floor(now / HOUR) - (nHours - 1 - i)) * HOUR);
    const p = this.redis.pipeline();
    for (const t of minuteStarts) p.hgetall(this.minuteKey(t));
    for (const t of hourStarts) p.hgetall(this.hourKey(t));
    const res = (await p.exec()) ?? [];
    const hashes = res.map(([err, h]) => {
      if (err) throw err;
      return (h ?? {}) as Record<string, string>;
    });
    const failuresByCode: Record<string, number> = {};
    const period = (t: number, h: Record<string, string>): FleetPeriod => ({
      t,
      completed: Number(h.completed ?? 0),
      failed: Number(h.failed ?? 0),
      cancelled: Number(h.cancelled ?? 0),
      retried: Number(h.retried ?? 0),
      rateLimited: Number(h.rateLimited ?? 0),
      audioSeconds: Number(h.audioSeconds ?? 0),
    });
    const minutes = minuteStarts.map((t, i) => period(t, hashes[i]!));
    const hours = hourStarts.map((t, i) => {
      const h = hashes[nMinutes + i]!;
      for (const [k, v] of Object.entries(h)) {
        if (k.startsWith('code:')) failuresByCode[k.slice(5)] = (failuresByCode[k.slice(5)] ?? 0) + Number(v);
      }
      return period(t, h);
    });
    return { minutes, hours, failuresByCode };
  }
}
