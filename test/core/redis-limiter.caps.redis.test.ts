import { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { RedisLimiter, type LimiterEvent } from '@scribe-fleet/core/adapters/redis/redis-limiter';
import { redisUrl } from '../helpers/env';

jest.setTimeout(60_000);

const clients: Redis[] = [];
const limiters: RedisLimiter[] = [];
afterAll(async () => {
  for (const l of limiters) await l.close();
  for (const c of clients) c.disconnect();
});

function limiter(cap: number | ((b: string) => number), extra: Partial<ConstructorParameters<typeof RedisLimiter>[0]> = {}, prefix = 'cap-test') {
  const redis = new Redis(redisUrl());
  clients.push(redis);
  const l = new RedisLimiter({ redis, prefix, capFor: typeof cap === 'number' ? () => cap : cap, ...extra });
  limiters.push(l);
  return l;
}

const bucket = () => `b-${randomBytes(4).toString('hex')}`;

it('three limiters (as three processes) never hold more than the cap, and everyone gets a turn', async () => {
  const b = bucket();
  const ls = [limiter(5), limiter(5), limiter(5)];
  let held = 0;
  let max = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: 90 }, async (_, i) => {
      const lease = await ls[i % 3]!.acquire(b);
      held += 1;
      max = Math.max(max, held);
      await new Promise((r) => setTimeout(r, 5 + (i % 7)));
      held -= 1;
      await lease.release();
      done += 1;
    }),
  );
  expect(done).toBe(90);
  expect(max).toBe(5);
});

it('grants a burst of waiters in one script call, in FIFO order, never past the cap', async () => {
  const b = bucket();
  const l = limiter(30);
  const redis = clients[clients.length - 1]!;
  // 30 holders, then 40 waiters queue behind them.
  const held = await Promise.all(Array.from({ length: 30 }, () => l.acquire(b)));
  const order: number[] = [];
  const waiting = Array.from({ length: 40 }, (_, i) => l.acquire(b).then((lease) => (order.push(i), lease)));
  for (const w of waiting) w.catch(() => undefined); // a failed expectation below leaves them to close()
  await new Promise((r) => setTimeout(r, 100));
  expect(order).toEqual([]);
  const calls = async () => Number(/calls=(\d+)/.exec((await redis.info('commandstats')).split('\n').find((x) => x.startsWith('cmdstat_evalsha:')) ?? '')?.[1] ?? 0);
  // A burst of 20 releases re-filled by one pump: far fewer acquire calls than waiters served.
  const before = await calls();
  await Promise.all(held.slice(0, 20).map((x) => x.release()));
  await new Promise((r) => setTimeout(r, 200));
  expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i));
  const acquireCalls = (await calls()) - before - 20; // 20 of them were the releases
  expect(acquireCalls).toBeLessThanOrEqual(5);
  expect((await l.snapshot(b)).inFlight).toBe(30);
  // Every holder lets go as soon as it has its slot: the last 20 waiters get theirs, in order.
  for (const x of held.slice(20)) await x.release();
  await Promise.all(waiting.map((p) => p.then((x) => x.release())));
  expect(order).toEqual(Array.from({ length: 40 }, (_, i) => i));
});

it("a crashed holder's slot returns within the lease TTL", async () => {
  const b = bucket();
  const crashed = limiter(1, { leaseTtlMs: 1500 });
  await crashed.acquire(b);
  // Crash: heartbeats stop and nothing is released.
  await crashed.close();
  clients[clients.length - 1]!.disconnect();
  const other = limiter(1, { leaseTtlMs: 1500 });
  const t0 = Date.now();
  const lease = await other.acquire(b);
  const waited = Date.now() - t0;
  expect(waited).toBeLessThanOrEqual(1500 + 300);
  await lease.release();
});

it('waiters do not poll Redis: a blocked waiter sends a handful of commands while a long lease is held', async () => {
  const b = bucket();
  const holder = limiter(1, { leaseTtlMs: 60_000 });
  const lease = await holder.acquire(b);
  const waiterLimiter = limiter(1, { leaseTtlMs: 60_000 });
  const probe = new Redis(redisUrl());
  clients.push(probe);
  const evalCount = async () => {
    const info = await probe.info('commandstats');
    const n = (re: RegExp) => Number(re.exec(info)?.[1] ?? 0);
    return n(/cmdstat_evalsha:calls=(\d+)/) + n(/cmdstat_eval:calls=(\d+)/);
  };
  const waiting = Array.from({ length: 20 }, () => waiterLimiter.acquire(b));
  await new Promise((r) => setTimeout(r, 300));
  const before = await evalCount();
  await new Promise((r) => setTimeout(r, 6000));
  const during = (await evalCount()) - before;
  // One process, twenty waiters: only the head tries, at most once per fallback interval (5 s) and heartbeat (20 s).
  expect(during).toBeLessThanOrEqual(4);
  await lease.release(); // wakes the head through pub/sub, which then chains to the next
  const first = await waiting[0]!;
  await first.release();
  const second = await waiting[1]!;
  await second.release();
  for (const w of waiting.slice(2)) void w.then((l) => l.release());
  await Promise.all(waiting);
});

it('an aborted waiter leaves the queue and takes no slot', async () => {
  const b = bucket();
  const l = limiter(1);
  const lease = await l.acquire(b);
  const ctrl = new AbortController();
  const p = l.acquire(b, ctrl.signal);
  ctrl.abort(new Error('cancelled'));
  await expect(p).rejects.toThrow('cancelled');
  await lease.release();
  const again = await l.acquire(b);
  expect((await l.snapshot(b)).inFlight).toBe(1);
  await again.release();
});

it('a full bucket does not block another bucket', async () => {
  const full = bucket();
  const free = bucket();
  const l = limiter(1);
  const held = await l.acquire(full);
  const blocked = l.acquire(full);
  const t0 = Date.now();
  const other = await l.acquire(free);
  expect(Date.now() - t0).toBeLessThan(200);
  await other.release();
  await held.release();
  await (await blocked).release();
});

it('AIMD: a 429 cuts the effective cap, quiet releases grow it back to the configured cap', async () => {
  const b = bucket();
  const events: LimiterEvent[] = [];
  const l = limiter(10, { increaseIntervalMs: 200, onEvent: (e) => events.push(e) });
  const leases = await Promise.all(Array.from({ length: 10 }, () => l.acquire(b)));
  l.reportRateLimited(b);
  l.reportRateLimited(b); // the same burst: counted once
  await new Promise((r) => setTimeout(r, 100));
  expect((await l.snapshot(b)).effectiveCap).toBe(7);
  expect(events.filter((e) => e.type === 'cap:decreased')).toHaveLength(1);
  for (const x of leases) await x.release();
  // Now at most 7 may be held at once.
  const seven = await Promise.all(Array.from({ length: 7 }, () => l.acquire(b)));
  const eighth = l.acquire(b);
  let got = false;
  void eighth.then(() => (got = true));
  await new Promise((r) => setTimeout(r, 100));
  expect(got).toBe(false);
  for (const x of seven) await x.release();
  await (await eighth).release();
  // Additive increase: one step per quiet interval, on release.
  for (let i = 0; i < 6; i++) {
    await new Promise((r) => setTimeout(r, 220));
    await (await l.acquire(b)).release();
  }
  expect((await l.snapshot(b)).effectiveCap).toBe(10);
});
