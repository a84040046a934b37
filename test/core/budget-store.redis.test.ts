/**
 * The budget books on a real Redis (adapters/redis/budget-store.ts and its two Lua scripts): many
 * workers racing for the last of a budget admit exactly what fits; a reservation is kept across
 * re-admissions of the same job and settled once; an account's day book takes its limits per call.
 */
import { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { RedisBudgetStore } from '@scribe-fleet/core/adapters/redis/budget-store';
import { testConfig } from '../helpers/fleet';

const config = testConfig();
const redis = new Redis(config.REDIS_URL);
const others = Array.from({ length: 8 }, () => new Redis(config.REDIS_URL));
const prefix = `t-budget-${randomBytes(4).toString('hex')}`;

afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  for (const r of others) r.disconnect();
});

describe('RedisBudgetStore', () => {
  it('eight connections racing for a budget of 10 admissions of 1 s admit exactly 10 of 40', async () => {
    const stores = others.map((r) => new RedisBudgetStore(r, prefix));
    const batchId = 'b_20261207-000000_0000aaaa';
    await stores[0]!.setLimits(batchId, { maxAudioSeconds: 10 });
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => stores[i % stores.length]!.admit({ batchId }, `job-${i}`, { seconds: 1, costUsd: 0.01 })));
    expect(results.filter((r) => r.admitted)).toHaveLength(10);
    const got = await stores[0]!.get(batchId);
    expect(got).toMatchObject({ limits: { maxAudioSeconds: 10 }, book: { spentSeconds: 0, reservedSeconds: 10 } });
    expect(got!.book.reservedCostUsd).toBeCloseTo(0.1, 9);
  });

  it('keeps a job’s reservation when it is admitted again, settles it once, and then admits what its actual use left room for', async () => {
    const store = new RedisBudgetStore(redis, prefix);
    const batchId = 'b_20261207-000000_0000bbbb';
    await store.setLimits(batchId, { maxAudioSeconds: 5 });
    expect((await store.admit({ batchId }, 'a', { seconds: 4, costUsd: 0 })).admitted).toBe(true);
    // The same job again (a retry after a crash): admitted on its reservation, nothing added.
    expect((await store.admit({ batchId }, 'a', { seconds: 4, costUsd: 0 })).admitted).toBe(true);
    expect((await store.admit({ batchId }, 'b', { seconds: 2, costUsd: 0 })).admitted).toBe(false);
    expect(await store.settle({ batchId }, 'a', { seconds: 3, costUsd: 0 })).toBe(true);
    expect(await store.settle({ batchId }, 'a', { seconds: 3, costUsd: 0 })).toBe(false);
    expect((await store.get(batchId))!.book).toMatchObject({ spentSeconds: 3, reservedSeconds: 0 });
    expect((await store.admit({ batchId }, 'b', { seconds: 2, costUsd: 0 })).admitted).toBe(true);
    expect((await store.admit({ batchId }, 'c', { seconds: 0.5, costUsd: 0 })).admitted).toBe(false);
    // Raised: room again.
    await store.setLimits(batchId, { maxAudioSeconds: 6 });
    expect((await store.admit({ batchId }, 'c', { seconds: 0.5, costUsd: 0 })).admitted).toBe(true);
  });

  it('a batch without limits admits without keeping a book; a cost limit binds on its own', async () => {
    const store = new RedisBudgetStore(redis, prefix);
    expect((await store.admit({ batchId: 'b_20261207-000000_0000cccc' }, 'x', { seconds: 1e9, costUsd: 1e9 })).admitted).toBe(true);
    expect(await store.get('b_20261207-000000_0000cccc')).toBeNull();
    await store.setLimits('b_20261207-000000_0000dddd', { maxCostUsd: 1 });
    expect((await store.admit({ batchId: 'b_20261207-000000_0000dddd' }, 'x', { seconds: 1e6, costUsd: 0.6 })).admitted).toBe(true);
    expect((await store.admit({ batchId: 'b_20261207-000000_0000dddd' }, 'y', { seconds: 1, costUsd: 0.6 })).admitted).toBe(false);
  });

  it('an account’s book of the day takes the limits given, and expires', async () => {
    const store = new RedisBudgetStore(redis, prefix);
    const scope = { provider: 'deepgram', account: 'projA', day: '2026-12-07' };
    expect((await store.admit(scope, 'j1', { seconds: 3600, costUsd: 0.26 }, { maxAudioSeconds: 5400 })).admitted).toBe(true);
    expect((await store.admit(scope, 'j2', { seconds: 3600, costUsd: 0.26 }, { maxAudioSeconds: 5400 })).admitted).toBe(false);
    // A raised SCRIBE_BUDGETS (the limits come with each call) admits it.
    expect((await store.admit(scope, 'j2', { seconds: 3600, costUsd: 0.26 }, { maxAudioSeconds: 7200 })).admitted).toBe(true);
    const ttl = await redis.ttl(`${prefix}:budget:acct:deepgram:projA:2026-12-07`);
    expect(ttl).toBeGreaterThan(2 * 24 * 3600);
  });
});
