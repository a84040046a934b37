import { DeadlineScheduler, IdleWatchdog, VirtualTimers } from '../src';

/** A watchdog on the scheduler's virtual time line (the same scheduler the production clock uses). */
function world(start = 0) {
  const timers = new VirtualTimers(start);
  const clock = new DeadlineScheduler(timers);
  return { timers, clock };
}

const reason = (ms: number) => new Error(`idle ${ms}`);

describe('IdleWatchdog (bounded by progress, virtual time)', () => {
  it('aborts after idleMs with no touch, with the idle time in the reason', async () => {
    const { clock } = world(1_000);
    const w = new IdleWatchdog(clock, 5_000, reason);
    await new Promise<void>((resolve) => w.signal.addEventListener('abort', () => resolve()));
    expect(clock.now()).toBe(6_000);
    expect((w.signal.reason as Error).message).toBe('idle 5000');
  });

  it('never aborts while touched more often than idleMs, however long the work runs', async () => {
    const { clock } = world();
    const w = new IdleWatchdog(clock, 5_000, reason);
    // 10 minutes of work touching every 4.9 s.
    for (let t = 4_900; t <= 600_000; t += 4_900) {
      await clock.sleepUntil(t);
      expect(w.signal.aborted).toBe(false);
      w.touch();
    }
    // Then the work stops moving: aborted 5 s after the last touch, not before.
    const last = clock.now();
    await new Promise<void>((resolve) => w.signal.addEventListener('abort', () => resolve()));
    expect(clock.now()).toBe(last + 5_000);
    w.stop();
  });

  it('stop() ends it: no abort, no sleeper left on the clock', async () => {
    const { clock } = world();
    const w = new IdleWatchdog(clock, 5_000, reason);
    expect(clock.pending).toBe(1);
    w.stop();
    await clock.sleepUntil(60_000);
    expect(w.signal.aborted).toBe(false);
    expect(clock.pending).toBe(0);
  });

  it('refuses a non-positive idle time', () => {
    const { clock } = world();
    expect(() => new IdleWatchdog(clock, 0, reason)).toThrow(RangeError);
  });
});
