import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { capFor, parseCapBucketKey } from '../domain/caps';
import { capSettings, type Config } from '../domain/config';
import { InternalError, LeaseLostError } from '../domain/errors';
import type { Lease, Limiter } from '../ports/limiter';

/**
 * Fleet-wide concurrency caps: a lease semaphore in Redis, one per cap bucket.
 *
 * - A lease is a member of a sorted set scored by its expiry (Redis server time, so host clocks do not
 *   matter). Acquire, renew and release are single Lua scripts, so the count can never pass the cap.
 * - Holders heartbeat every ttl/3. A crashed holder stops heartbeating and its slot returns when the
 *   lease expires: within `leaseTtlMs` of its last heartbeat. A holder that finds its lease gone (a
 *   long Redis outage) aborts its session through `lease.signal` rather than run over the cap.
 * - Waiters do not poll: each process keeps one FIFO of waiters per bucket and one subscriber
 *   connection; a release publishes on the bucket's channel and wakes the head waiter, which tries
 *   once. The only timer is a fallback at the earliest lease expiry (capped at 5 s) for crashed holders.
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

// KEYS[1] leases zset, KEYS[2] state hash. ARGV: leaseId, ttlMs, configuredCap.
// Returns {1, inFlight, effectiveCap} or {0, inFlight, effectiveCap, msUntilEarliestExpiry}.
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local configured = tonumber(ARGV[3])
local eff = tonumber(redis.call('HGET', KEYS[2], 'eff') or configured)
if eff > configured then eff = configured; redis.call('HSET', KEYS[2], 'eff', eff) end
local n = redis.call('ZCARD', KEYS[1])
if n < eff then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return {1, n + 1, eff}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = 1000
if first[2] then wait = tonumber(first[2]) - now end
return {0, n, eff, wait}
`;

// KEYS[1] leases, KEYS[2] state. ARGV: leaseId, ttlMs, configuredCap.
// Returns 1 if renewed, 2 if the lease had expired (Redis was away longer than the TTL) and was
// taken again because the bucket still had room, 0 if it is gone and the bucket is full.
const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
local r = 1
if not s or tonumber(s) <= now then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  local configured = tonumber(ARGV[3])
  local eff = tonumber(redis.call('HGET', KEYS[2], 'eff') or configured)
  if eff > configured then eff = configured end
  if redis.call('ZCARD', KEYS[1]) >= eff then return 0 end
  r = 2
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return r
`;

// KEYS[1] leases, KEYS[2] state. ARGV: leaseId, configuredCap, increaseIntervalMs, channel.
// Removes the lease, applies the additive increase, wakes waiters. Returns the effective cap.
const RELEASE = `
redis.call('ZREM', KEYS[1], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local configured = tonumber(ARGV[2])
local eff = tonumber(redis.call('HGET', KEYS[2], 'eff') or configured)
local changed = tonumber(redis.call('HGET', KEYS[2], 'changedAt') or '0')
if eff < configured and now - changed >= tonumber(ARGV[3]) then
  eff = eff + 1
  redis.call('HSET', KEYS[2], 'eff', eff, 'changedAt', now)
end
redis.call('PUBLISH', ARGV[4], '1')
return eff
`;

// KEYS[1] leases, KEYS[2] state. ARGV: configuredCap, factor. Multiplicative decrease, at most every 500 ms
// (the 429s of one burst arrive together and must not cut the cap to nothing).
const DECREASE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local configured = tonumber(ARGV[1])
local eff = tonumber(redis.call('HGET', KEYS[2], 'eff') or configured)
local dec = tonumber(redis.call('HGET', KEYS[2], 'decreasedAt') or '0')
if now - dec < 500 then return {0, eff} end
local n = redis.call('ZCARD', KEYS[1])
local base = math.min(eff, math.max(n, 1))
local nextEff = math.max(1, math.floor(base * tonumber(ARGV[2])))
redis.call('HSET', KEYS[2], 'eff', nextEff, 'changedAt', now, 'decreasedAt', now)
return {1, nextEff}
`;

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
  capAcquire(k1: string, k2: string, id: string, ttl: number, cap: number): Promise<number[]>;
  capRenew(k1: string, k2: string, id: string, ttl: number, cap: number): Promise<number>;
  capRelease(k1: string, k2: string, id: string, cap: number, interval: number, channel: string): Promise<number>;
  capDecrease(k1: string, k2: string, cap: number, factor: number): Promise<number[]>;
};

export class RedisLimiter implements Limiter {
  private readonly redis: RedisWithScripts;
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
    this.redis.defineCommand('capAcquire', { numberOfKeys: 2, lua: ACQUIRE });
    this.redis.defineCommand('capRenew', { numberOfKeys: 2, lua: RENEW });
    this.redis.defineCommand('capRelease', { numberOfKeys: 2, lua: RELEASE });
    this.redis.defineCommand('capDecrease', { numberOfKeys: 2, lua: DECREASE });
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
        if (this.channel(bucket) === channel) {
          st.woken = true;
          st.wake?.();
        }
      }
    });
  }

  // Hash-tagged so a bucket's keys share a Redis Cluster slot.
  private key(bucket: string, what: 'leases' | 'state') {
    return `${this.opts.prefix}:{${bucket}}:${what}`;
  }
  private channel(bucket: string) {
    return `${this.opts.prefix}:{${bucket}}:released`;
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
        await this.sub.subscribe(this.channel(bucket));
        st.subscribed = true;
      }
      while (st.waiters.length && !this.closed) {
        // Redis is away: do not queue acquisitions behind the holders' renewals; wait for it.
        if (this.redis.status !== 'ready' || Date.now() < this.holdUntil) {
          await this.waitForWake(st, Math.max(50, Math.min(1000, this.holdUntil - Date.now())));
          continue;
        }
        const head = st.waiters[0]!;
        const id = randomUUID();
        st.woken = false;
        let res: number[];
        try {
          res = await this.redis.capAcquire(this.key(bucket, 'leases'), this.key(bucket, 'state'), id, this.ttl, this.opts.capFor(bucket));
        } catch {
          await this.waitForWake(st, 1000); // Redis unavailable: retry gently
          continue;
        }
        if (st.waiters[0] !== head) {
          // The head gave up while we asked; hand the slot back if we got one.
          if (res[0] === 1) await this.releaseLease(bucket, id);
          continue;
        }
        if (res[0] === 1) {
          st.waiters.shift();
          if (head.onAbort) head.signal?.removeEventListener('abort', head.onAbort);
          this.opts.onEvent?.({ type: 'lease:acquired', bucket, inFlight: res[1]!, effectiveCap: res[2]!, waitedMs: Date.now() - head.since });
          head.resolve(this.makeLease(bucket, id));
          continue; // there may be room for the next waiter too
        }
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
      this.redis.capRenew(this.key(bucket, 'leases'), this.key(bucket, 'state'), id, this.ttl, cap()).then(
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
        this.opts.onEvent?.({ type: 'lease:released', bucket, effectiveCap: eff });
      },
    };
  }

  private async releaseLease(bucket: string, id: string, cap = this.opts.capFor(bucket)): Promise<number> {
    try {
      return await this.redis.capRelease(this.key(bucket, 'leases'), this.key(bucket, 'state'), id, cap, this.opts.increaseIntervalMs ?? 5000, this.channel(bucket));
    } catch {
      return -1; // the lease expires on its own within the TTL
    }
  }

  reportRateLimited(bucket: string): void {
    void this.redis
      .capDecrease(this.key(bucket, 'leases'), this.key(bucket, 'state'), this.opts.capFor(bucket), this.opts.decreaseFactor ?? 0.7)
      .then((r) => {
        if (r[0] === 1) this.opts.onEvent?.({ type: 'cap:decreased', bucket, effectiveCap: r[1]! });
      })
      .catch(() => {});
  }

  /** Current leases and effective cap of a bucket (for metrics and tests). */
  async snapshot(bucket: string): Promise<{ inFlight: number; effectiveCap: number; configuredCap: number }> {
    const [sec, usec] = await this.redis.time();
    const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    const [n, eff] = await Promise.all([this.redis.zcount(this.key(bucket, 'leases'), now, '+inf'), this.redis.hget(this.key(bucket, 'state'), 'eff')]);
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
 * Redis connection of its own (closed with the limiter). Workers wait on Redis indefinitely
 * (`maxRetriesPerRequest: null`); read-only users (the dashboard) pass a small number to fail fast.
 */
export function limiterFromConfig(config: Config, opts: { onEvent?: (e: LimiterEvent) => void; maxRetriesPerRequest?: number | null } = {}): RedisLimiter {
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: opts.maxRetriesPerRequest === undefined ? null : opts.maxRetriesPerRequest });
  redis.on('error', () => {}); // ioredis reconnects; callers see failed commands
  const settings = capSettings(config);
  return new RedisLimiter({
    redis,
    prefix: `${config.QUEUE_PREFIX}:cap`,
    capFor: (key) => {
      const b = parseCapBucketKey(key);
      return b ? capFor(b, settings) : 1;
    },
    leaseTtlMs: config.LEASE_TTL_MS,
    decreaseFactor: config.CAP_DECREASE_FACTOR,
    increaseIntervalMs: config.CAP_INCREASE_INTERVAL_MS,
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    ownsConnection: true,
  });
}
