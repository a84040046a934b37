import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Clock } from '../domain/clock';

/** The real monotonic clock (performance.now), sleeping until absolute deadlines. */
export const systemClock: Clock = {
  now: () => performance.now(),
  async sleepUntil(deadlineMs: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw signal.reason;
    // setTimeout works in whole milliseconds and may wake a fraction early: loop until the deadline has passed.
    for (let wait = deadlineMs - performance.now(); wait > 0; wait = deadlineMs - performance.now()) {
      await sleep(Math.max(1, Math.ceil(wait)), undefined, signal ? { signal } : undefined);
    }
  },
};
