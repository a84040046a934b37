import { BucketSlots, type SlotPlan } from '../src';

const work = (entries: Record<string, boolean>) => new Map(Object.entries(entries));
const keys = (n: number, prefix = 'b') => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(2, '0')}`);

describe('BucketSlots (the buckets one worker process consumes; virtual time)', () => {
  it('opens only buckets with work, and gives one up after idleMs without work', () => {
    const s = new BucketSlots({ maxBuckets: 0, idleMs: 1_000, turnMs: 5_000 });
    expect(s.plan(work({ a: true, b: false }), 0)).toEqual({ open: ['a'], close: [] });
    expect(s.plan(work({ a: false, b: false }), 100)).toEqual({ open: [], close: [] });
    expect(s.plan(work({ a: false, b: false }), 1_099)).toEqual({ open: [], close: [] });
    // Work again before idleMs: the idle clock starts over.
    expect(s.plan(work({ a: true, b: false }), 1_099)).toEqual({ open: [], close: [] });
    expect(s.plan(work({ a: false, b: false }), 1_200)).toEqual({ open: [], close: [] });
    expect(s.plan(work({ a: false, b: false }), 2_199)).toEqual({ open: [], close: [] });
    expect(s.plan(work({ a: false, b: false }), 2_200)).toEqual({ open: [], close: ['a'] });
    expect(s.open).toEqual([]);
    // A bucket that is no longer offered (filtered out, unregistered) is given up at once.
    s.plan(work({ b: true }), 3_000);
    expect(s.plan(work({}), 3_100)).toEqual({ open: [], close: ['b'] });
  });

  it('without a limit every bucket with work is open and none rotates', () => {
    const s = new BucketSlots({ maxBuckets: 0, idleMs: 1_000, turnMs: 10 });
    const all = keys(40);
    expect(s.plan(new Map(all.map((k) => [k, true])), 0).open).toEqual(all);
    for (let t = 100; t < 5_000; t += 100) expect(s.plan(new Map(all.map((k) => [k, true])), t)).toEqual({ open: [], close: [] });
  });

  it('never holds more than maxBuckets open, and serves every bucket with work in turn', () => {
    const max = 4;
    const turnMs = 1_000;
    const s = new BucketSlots({ maxBuckets: max, idleMs: 60_000, turnMs });
    const all = keys(16);
    const busy = new Map(all.map((k) => [k, true]));
    const served = new Map<string, number>();
    let closing = new Set<string>();
    for (let t = 0; t <= 60_000; t += 200) {
      const before = s.open.length;
      const p: SlotPlan = s.plan(busy, t, closing);
      // A bucket closed at this tick is unavailable at the next one (its Worker is closing).
      closing = new Set(p.close);
      expect(s.open.length).toBeLessThanOrEqual(max);
      for (const k of p.open) served.set(k, (served.get(k) ?? 0) + 1);
      // A slot freed at this tick is not reused at this tick: only slots free before it are taken.
      expect(p.open.length).toBeLessThanOrEqual(max - before);
      for (const k of p.close) expect(p.open).not.toContain(k);
    }
    // 60 s of 1 s turns over 4 slots: every bucket was served, several times, and evenly.
    expect([...served.keys()].sort()).toEqual(all);
    const counts = [...served.values()];
    expect(Math.min(...counts)).toBeGreaterThanOrEqual(3);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
  });

  it('a slot freed at one tick is reused at the next, by the bucket that waited longest', () => {
    const s = new BucketSlots({ maxBuckets: 2, idleMs: 500, turnMs: 60_000 });
    expect(s.plan(work({ a: true, b: true }), 0).open).toEqual(['a', 'b']);
    expect(s.plan(work({ a: true, b: true, d: true }), 100)).toEqual({ open: [], close: [] });
    expect(s.plan(work({ a: true, b: true, c: true, d: true }), 200)).toEqual({ open: [], close: [] });
    // a goes idle; after idleMs its slot is given up, and only at the next tick taken by d (waiting since 100).
    s.plan(work({ a: false, b: true, c: true, d: true }), 300);
    expect(s.plan(work({ a: false, b: true, c: true, d: true }), 800)).toEqual({ open: [], close: ['a'] });
    expect(s.plan(work({ a: false, b: true, c: true, d: true }), 900)).toEqual({ open: ['d'], close: [] });
    expect(s.open.sort()).toEqual(['b', 'd']);
  });

  it('does not take a slot from a bucket before its turn is over, nor open a bucket still closing', () => {
    const s = new BucketSlots({ maxBuckets: 1, idleMs: 60_000, turnMs: 1_000 });
    expect(s.plan(work({ a: true, b: true }), 0).open).toEqual(['a']);
    expect(s.plan(work({ a: true, b: true }), 999)).toEqual({ open: [], close: [] });
    expect(s.plan(work({ a: true, b: true }), 1_000)).toEqual({ open: [], close: ['a'] });
    // b opens at the next tick; a waits again, behind everyone already waiting.
    expect(s.plan(work({ a: true, b: true }), 1_100, new Set(['a']))).toEqual({ open: ['b'], close: [] });
    expect(s.plan(work({ a: true, b: true }), 2_100, new Set(['a']))).toEqual({ open: [], close: [] });
    // While a is still closing it cannot take b's slot, so b keeps it past its turn.
    expect(s.open).toEqual(['b']);
    expect(s.plan(work({ a: true, b: true }), 2_200)).toEqual({ open: [], close: ['b'] });
    expect(s.plan(work({ a: true, b: true }), 2_300)).toEqual({ open: ['a'], close: [] });
  });
});
