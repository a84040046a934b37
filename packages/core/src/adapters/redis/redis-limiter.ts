import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { capBucketsFromConfig, type Config } from '../../domain/config';
import { InternalError, LeaseLostError } from '../../domain/errors';
import type { Lease, Limiter } from '../../ports/limiter';
import { openRedis } from './connection';
import { CapKeys, capPrefix } from './keys';
import { defineScript } from './scripts';

/**
 * Fleet-wide concurrency caps: a lease semaphore in Redis, one per cap bucket.
 *
 * - A lease is a member of a sorted set scored by its expiry (Redis server time, so host clocks do not
 *   matter). Acquire, renew and release are single Lua scripts (redis/scripts/cap*.lua), so the count
 *   can never pass the cap.
 * - Holders heartbeat every ttl/3. A crashed holder stops heartbeating and its slot returns when the
 *   lease expires: within `leaseTtlMs` of its last heartbeat. A holder that finds its lease gone (a
 *   long Redis outage) aborts its session through `lease.signal` rather than run over the cap.
 * - Waiters do not poll: each process keeps one FIFO of waiters per bucket and one subscriber
 *   connection; a release publishes on the bucket's channel and wakes the bucket's pump, which asks
 *   for a slot for every waiter in the queue in one script call (as many as there is room for are
 *   granted, in FIFO order). The only timer is a fallback at the earliest lease expiry (capped at 5 s) for crashed holders.
 * - Adaptive cap (AIMD): a 429 multiplies the bucket's *effective* cap by `decreaseFactor` (from the
 *   number in flight, at most every 500 ms); each release after `increaseIntervalMs` without a
 *   change adds 1 back, up to the configured cap.
 */
export interface RedisLimiterOptions {
  redis: Redis;
  /** Key prefix, e.g. `scribe:cap`. */
  prefix: string;
  capFor: (bucket: string) => number;
  leaseTtlMs?: number;
  decreaseFactor?: number;
  increaseIntervalMs?: number;
  onEvent?: (e: LimiterEvent) => void;
  /** Disconnect `redis` on close (when the limiter owns it). */
  ownsConnection?: boolean;
}

export type LimiterEvent =
  | { type: 'lease:acquired'; bucket: string; inFlight: number; effectiveCap: number; waitedMs: number }
  | { type: 'lease:released'; bucket: string; effectiveCap: number }
  | { type: 'lease:lost'; bucket: string }
  | { type: 'cap:decreased'; bucket: string; effectiveCap: number };

/** Most waiters one acquire call asks a slot for (bounds the script's work and its reply). */
const MAX_GRANTS_PER_CALL = 256;

interface Waiter {
  resolve: (lease: Lease) => void;
  reject: (e: unknown) => void;
  signal?: AbortSignal;
  since: number;
  onAbort?: () => void;
}

interface BucketState {
  waiters: Waiter[];
  pumping: boolean;
  /** Set by a release message; consumed by the pump, so a wake-up between try and wait is not lost. */
  woken: boolean;
  wake?: () => void;
  subscribed: boolean;
}

type RedisWithScripts = Redis & {
  capAcquire(k1: string, k2: string, ttl: number, cap: number, ...ids: string[]): Promise<number[]>;
  capRenew(k1: string, k2: string, id: string, ttl: number, cap: number): Promise<number>;
  capRelease(k1: string, k2: string, id: string, cap: number, interval: number, channel: string): Promise<number>;
  capDecrease(k1: string, k2: string, cap: number, factor: number): Promise<number[]>;
};

export class RedisLimiter implements Limiter {
  private readonly redis: RedisWithScripts;
  private readonly keys: CapKeys;
  private readonly sub: Redis;
  private readonly buckets = new Map<string, BucketState>();
  private readonly held = new Set<{ stop: () => void; renew: () => void }>();
  /** Acquisitions wait until this time (Redis has just restarted: the holders re-take their leases first). */
  private holdUntil = 0;
  private readonly ttl: number;
  private readonly reclaimGraceMs: number;
  private closed = false;

  constructor(private readonly opts: RedisLimiterOptions) {
    this.redis = opts.redis as RedisWithScripts;
    this.ttl = opts.leaseTtlMs ?? 15_000;
    this.reclaimGraceMs = Math.max(2000, Math.floor(this.ttl / 3) + 1000);
    this.keys = new CapKeys(opts.prefix);
    defineScript(this.redis, 'capAcquire');
    defineScript(this.redis, 'capRenew');
    defineScript(this.redis, 'capRelease');
    defineScript(this.redis, 'capDecrease');
    this.sub = opts.redis.duplicate();
    this.sub.on('error', () => {}); // reconnects on its own; the fallback timer covers the gap
    // After an outage: holders renew (or re-take) their leases at once, and new acquisitions wait a
    // moment if Redis itself restarted, so a slot whose lease expired meanwhile goes back to the
    // session still using it rather than to a newcomer (which would then run over the cap).
    this.redis.on('ready', () => {
      for (const h of this.held) h.renew();
      void this.redis.info('server').then(
        (info) => {
          const up = Number(/uptime_in_seconds:(\d+)/.exec(info)?.[1] ?? Infinity) * 1000;
          if (up < this.reclaimGraceMs) this.holdUntil = Date.now() + (this.reclaimGraceMs - up);
        },
        () => undefined,
      );
    });
    this.sub.on('message', (channel: string) => {
      for (const [bucket, st] of this.buckets) {
        if (this.keys.released(bucket) === channel) {
          st.woken = true;
          st.wake?.();
        }
      }
    });
  }

  private state(bucket: string): BucketState {
    let st = this.buckets.get(bucket);
    if (!st) {
      st = { waiters: [], pumping: false, woken: false, subscribed: false };
      this.buckets.set(bucket, st);
    }
    return st;
  }

  acquire(bucket: string, signal?: AbortSignal): Promise<Lease> {
    if (this.closed) return Promise.reject(new InternalError('limiter is closed'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    const st = this.state(bucket);
    return new Promise<Lease>((resolve, reject) => {
      const w: Waiter = { resolve, reject, since: Date.now() };
      if (signal) {
        w.signal = signal;
        w.onAbort = () => {
          const i = st.waiters.indexOf(w);
          if (i >= 0) st.waiters.splice(i, 1);
          if (i === 0) st.wake?.();
          reject(signal.reason);
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      st.waiters.push(w);
      if (!st.pumping) void this.pump(bucket, st);
    });
  }

  private async pump(bucket: string, st: BucketState): Promise<void> {
    st.pumping = true;
    try {
      if (!st.subscribed) {
        await this.sub.subscribe(this.keys.released(bucket));
        st.subscribed = true;
      }
      while (st.waiters.length && !this.closed) {
        // Redis is away: do not queue acquisitions behind the holders' renewals; wait for it.
        if (this.redis.status !== 'ready' || Date.now() < this.holdUntil) {
          await this.waitForWake(st, Math.max(50, Math.min(1000, this.holdUntil - Date.now())));
          continue;
        }
        // Ask once for every waiter at the head of the queue: a burst of releases is re-filled by one
        // script call, not one round trip per waiter.
        const batch = st.waiters.slice(0, MAX_GRANTS_PER_CALL);
        const ids = batch.map(() => randomUUID());
        st.woken = false;
        let res: number[];
        try {
          res = await this.redis.capAcquire(this.keys.leases(bucket), this.keys.state(bucket), this.ttl, this.opts.capFor(bucket), ...ids);
        } catch {
          await this.waitForWake(st, 1000); // Redis unavailable: retry gently
          continue;
        }
        const granted = res[0]!;
        for (let i = 0; i < granted; i++) {
          const w = batch[i]!;
          const at = st.waiters.indexOf(w);
          if (at < 0) {
            // This waiter gave up while we asked: hand its slot back.
            await this.releaseLease(bucket, ids[i]!);
            continue;
          }
          st.waiters.splice(at, 1);
          if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
          this.opts.onEvent?.({ type: 'lease:acquired', bucket, inFlight: res[1]! - granted + i + 1, effectiveCap: res[2]!, waitedMs: Date.now() - w.since });
          w.resolve(this.makeLease(bucket, ids[i]!));
        }
        if (granted === batch.length) continue; // every waiter asked for got a slot; newcomers may fit too
        if (!st.woken) await this.waitForWake(st, Math.min(5000, Math.max(50, (res[3] ?? 1000) + 10)));
      }
    } finally {
      st.pumping = false;
    }
  }

  private waitForWake(st: BucketState, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        st.wake = undefined;
        resolve();
      }
      st.wake = done;
    });
  }

  private makeLease(bucket: string, id: string): Lease & { signal: AbortSignal } {
    const ctrl = new AbortController();
    const cap = () => this.opts.capFor(bucket);
    let released = false;
    const renew = () => {
      this.redis.capRenew(this.keys.leases(bucket), this.keys.state(bucket), id, this.ttl, cap()).then(
        (ok) => {
          if (ok === 0 && !released) {
            this.opts.onEvent?.({ type: 'lease:lost', bucket });
            ctrl.abort(new LeaseLostError(`lease on cap bucket ${bucket} expired while held and its slot was taken (Redis unreachable for over ${this.ttl} ms?)`));
          }
        },
        () => {}, // transient: the next heartbeat retries; the lease survives ttl, and is re-taken after it if there is room
      );
    };
    const beat = setInterval(renew, Math.max(100, Math.floor(this.ttl / 3)));
    beat.unref?.();
    const handle = { stop: () => clearInterval(beat), renew };
    this.held.add(handle);
    return {
      bucket,
      id,
      signal: ctrl.signal,
      release: async () => {
        if (released) return;
        released = true;
        handle.stop();
        this.held.delete(handle);
        const eff = await this.releaseLease(bucket, id, cap());
        // This process's own waiters try at once, without waiting for the release message's round trip.
        const st = this.buckets.get(bucket);
        if (st?.waiters.length) {
          st.woken = true;
          st.wake?.();
        }
        this.opts.onEvent?.({ type: 'lease:released', bucket, effectiveCap: eff });
      },
    };
  }

  private async releaseLease(bucket: string, id: string, cap = this.opts.capFor(bucket)): Promise<number> {
    try {
      return await this.redis.capRelease(this.keys.leases(bucket), this.keys.state(bucket), id, cap, this.opts.increaseIntervalMs ?? 5000, this.keys.released(bucket));
    } catch {
      return -1; // the lease expires on its own within the TTL
    }
  }

  reportRateLimited(bucket: string): void {
    void this.redis
      .capDecrease(this.keys.leases(bucket), this.keys.state(bucket), this.opts.capFor(bucket), this.opts.decreaseFactor ?? 0.7)
      .then((r) => {
        if (r[0] === 1) this.opts.onEvent?.({ type: 'cap:decreased', bucket, effectiveCap: r[1]! });
      })
      .catch(() => {});
  }

  /** Current leases and effective cap of a bucket (for metrics and tests). */
  async snapshot(bucket: string): Promise<{ inFlight: number; effectiveCap: number; configuredCap: number }> {
    const [sec, usec] = await this.redis.time();
    const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    const [n, eff] = await Promise.all([this.redis.zcount(this.keys.leases(bucket), now, '+inf'), this.redis.hget(this.keys.state(bucket), 'eff')]);
    const configuredCap = this.opts.capFor(bucket);
    return { inFlight: n, effectiveCap: eff === null ? configuredCap : Math.min(Number(eff), configuredCap), configuredCap };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const h of this.held) h.stop();
    for (const st of this.buckets.values()) {
      for (const w of st.waiters.splice(0)) w.reject(new InternalError('limiter closed'));
      st.wake?.();
    }
    this.sub.disconnect();
    if (this.opts.ownsConnection) this.opts.redis.disconnect();
  }
}

/**
 * The fleet-wide cap semaphore as configured: caps from SCRIBE_CAPS and the provider defaults, on a
 * Redis connection of its own (closed with the limiter). Workers wait on Redis indefinitely (role
 * `worker`); read-only users (the dashboard) take role `reader` to fail fast (redis/connection.ts).
 */
export function limiterFromConfig(config: Config, opts: { onEvent?: (e: LimiterEvent) => void; role?: 'worker' | 'reader' } = {}): RedisLimiter {
  const redis = openRedis(config, opts.role ?? 'worker'); // ioredis reconnects; callers see failed commands
  const caps = capBucketsFromConfig(config);
  return new RedisLimiter({
    redis,
    prefix: capPrefix(config),
    capFor: (key) => caps.fromKey(key)?.cap ?? 1,
    leaseTtlMs: config.LEASE_TTL_MS,
    decreaseFactor: config.CAP_DECREASE_FACTOR,
    increaseIntervalMs: config.CAP_INCREASE_INTERVAL_MS,
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    ownsConnection: true,
  });
}
