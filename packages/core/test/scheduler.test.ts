import { DeadlineScheduler, pacedSend, VirtualTimers, type TimerHost } from '../src';

/** A deterministic pseudo-random sequence in [0, 1). */
function lcg(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

async function* chunks(n: number, size = 3200) {
  for (let i = 0; i < n; i++) yield Buffer.alloc(size);
}

describe('DeadlineScheduler (one timer for every sleeper, virtual time)', () => {
  it('wakes sleepers in deadline order (FIFO on ties), each at or after its deadline', async () => {
    const timers = new VirtualTimers(1_000);
    const clock = new DeadlineScheduler(timers);
    const rand = lcg(7);
    const deadlines = Array.from({ length: 200 }, () => 1_000 + Math.floor(rand() * 50) * 10);
    const woke: Array<{ i: number; at: number }> = [];
    await Promise.all(deadlines.map((d, i) => clock.sleepUntil(d).then(() => woke.push({ i, at: clock.now() }))));
    const expected = deadlines.map((d, i) => ({ d, i })).sort((a, b) => a.d - b.d || a.i - b.i).map((x) => x.i);
    expect(woke.map((w) => w.i)).toEqual(expected);
    for (const w of woke) expect(w.at).toBeGreaterThanOrEqual(deadlines[w.i]!);
    // One wake-up per distinct deadline (those due together wake together), not one per sleeper.
    expect(timers.wakeUps).toBe(new Set(deadlines.filter((d) => d > 1_000)).size);
    expect(clock.pending).toBe(0);
  });

  it('never wakes anyone early, even when its timer fires early', async () => {
    // A host whose timer fires half a millisecond before the armed time (a platform timer that rounds).
    let t = 0;
    const hasty: TimerHost & { armed?: { at: number; fire: () => void } } = {
      now: () => t,
      arm(at, fire) {
        this.armed = { at, fire };
      },
      disarm() {
        delete this.armed;
      },
    };
    const clock = new DeadlineScheduler(hasty);
    const woke: Array<[number, number]> = [];
    const all = [100, 100.2, 101, 150].map((d) => clock.sleepUntil(d).then(() => woke.push([d, t])));
    // Each deadline's timer first fires 0.5 ms early; re-armed for the same deadline, it fires on time.
    let early = NaN;
    for (let i = 0; i < 20 && hasty.armed; i++) {
      const { at, fire } = hasty.armed;
      t = Math.max(t, at === early ? at : at - 0.5);
      early = at;
      fire();
      for (let j = 0; j < 5; j++) await Promise.resolve();
    }
    await Promise.all(all);
    for (const [d, at] of woke) expect(at).toBeGreaterThanOrEqual(d);
    expect(woke.map(([d]) => d)).toEqual([100, 100.2, 101, 150]);
  });

  it('paces 10 000 chunks without drift while every wake-up is 0-7 ms late', async () => {
    const rand = lcg(42);
    const clock = new DeadlineScheduler(new VirtualTimers(5_000, () => rand() * 7));
    const sendTimes: number[] = [];
    const report = await pacedSend({ chunks: chunks(10_000), clock, phase: false, send: () => void sendTimes.push(clock.now()) });
    expect(report.earlySends).toBe(0);
    expect(report.driftAtEndMs).toBeGreaterThanOrEqual(0);
    expect(report.driftAtEndMs).toBeLessThan(7);
    expect(sendTimes[9_999]! - 5_000).toBeGreaterThanOrEqual(999_900);
    expect(sendTimes[9_999]! - 5_000).toBeLessThan(999_907);
    for (let i = 0; i < sendTimes.length; i++) expect(sendTimes[i]!).toBeGreaterThanOrEqual(5_000 + i * 100);
  });

  it('an aborted sleeper rejects with the reason, never wakes, and leaves the others on time', async () => {
    const timers = new VirtualTimers(0);
    const clock = new DeadlineScheduler(timers);
    const head = new AbortController();
    const mid = new AbortController();
    const woke: number[] = [];
    const a = clock.sleepUntil(10, head.signal).then(() => woke.push(10));
    const b = clock.sleepUntil(20, mid.signal).then(() => woke.push(20));
    const c = clock.sleepUntil(30).then(() => woke.push(30));
    head.abort(new Error('stop head'));
    mid.abort(new Error('stop mid'));
    await expect(a).rejects.toThrow('stop head');
    await expect(b).rejects.toThrow('stop mid');
    expect(clock.pending).toBe(1);
    await c;
    expect(woke).toEqual([30]);
    expect(clock.now()).toBe(30); // the timer moved from the aborted head straight to 30
    expect(timers.wakeUps).toBe(1);
    // Already aborted: rejects at once, nothing queued.
    await expect(clock.sleepUntil(100, head.signal)).rejects.toThrow('stop head');
    expect(clock.pending).toBe(0);
  });

  it('a paced stream stops at once on abort and gives its phase back', async () => {
    const clock = new DeadlineScheduler(new VirtualTimers(0));
    const ac = new AbortController();
    let sent = 0;
    const run = pacedSend({
      chunks: chunks(100),
      clock,
      signal: ac.signal,
      send: () => {
        if (++sent === 5) ac.abort(new Error('cancelled'));
      },
    });
    await expect(run).rejects.toThrow('cancelled');
    expect(sent).toBe(5);
    expect(clock.pending).toBe(0);
    expect(clock.phaseLoads(100).every((n) => n === 0)).toBe(true);
  });

  it('spreads 500 streams started together over the 100 ms period, never earlier than requested', async () => {
    const timers = new VirtualTimers(12_345.6);
    const clock = new DeadlineScheduler(timers);
    const requested = clock.now();
    const sendsAt = new Map<number, number>();
    const reports = await Promise.all(
      Array.from({ length: 500 }, () =>
        pacedSend({
          chunks: chunks(20),
          clock,
          send: () => void sendsAt.set(clock.now(), (sendsAt.get(clock.now()) ?? 0) + 1),
        }),
      ),
    );
    // 100 slots of 1 ms: 5 streams per slot, so at most 5 sends fall due together (instead of 500).
    expect(Math.max(...sendsAt.values())).toBe(5);
    expect(sendsAt.size).toBe(100 * 20);
    for (const r of reports) {
      expect(r.earlySends).toBe(0);
      expect(r.latenessMaxMs).toBe(0);
      expect(r.phaseOffsetMs).toBeGreaterThanOrEqual(0);
      expect(r.phaseOffsetMs).toBeLessThan(100);
    }
    // The offsets fill the period: every 1 ms slot is used.
    const offsets = new Set(reports.map((r) => Math.floor(r.phaseOffsetMs)));
    expect(offsets.size).toBe(100);
    // Nothing was sent before the unmoved schedule: the first send of any stream is at or after the request.
    expect(Math.min(...sendsAt.keys())).toBeGreaterThanOrEqual(requested);
    // One wake-up per slot and chunk, not one per stream and chunk.
    expect(timers.wakeUps).toBeLessThanOrEqual(100 * 20);
    // Every phase was given back.
    expect(clock.phaseLoads(100).reduce((a, b) => a + b, 0)).toBe(0);
  });

  it('a stream started later takes the least-loaded phase, wherever its start falls', () => {
    const clock = new DeadlineScheduler(new VirtualTimers(0));
    const leases = Array.from({ length: 99 }, () => clock.reservePhase(0, 100));
    // Slots 0..98 are taken; a stream asking at 37.2 gets slot 99 (offset 61.8), not a shared one.
    const late = clock.reservePhase(37.2, 100);
    expect(late.startMs).toBe(99);
    expect(late.offsetMs).toBeCloseTo(61.8, 9);
    // With slot 50 released, the next one asking at 0 gets slot 50.
    leases[50]!.release();
    leases[50]!.release(); // idempotent
    expect(clock.reservePhase(0, 100).startMs).toBe(50);
    const loads = clock.phaseLoads(100);
    expect(loads.every((n) => n === 1)).toBe(true);
  });

  it('without phases, streams started together share every deadline (control)', async () => {
    const clock = new DeadlineScheduler(new VirtualTimers(0));
    const sendsAt = new Map<number, number>();
    await Promise.all(
      Array.from({ length: 50 }, () =>
        pacedSend({ chunks: chunks(5), clock, phase: false, send: () => void sendsAt.set(clock.now(), (sendsAt.get(clock.now()) ?? 0) + 1) }),
      ),
    );
    expect(Math.max(...sendsAt.values())).toBe(50);
  });
});
