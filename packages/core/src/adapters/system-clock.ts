import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Clock } from '../domain/clock';

/** The real monotonic clock (performance.now), sleeping until absolute deadlines. */
export const systemClock: Clock = {
  now: () => performance.now(),
  async sleepUntil(deadlineMs: number, signal?: AbortSignal): Promise<void> {
    const wait = deadlineMs - performance.now();
    if (signal?.aborted) throw signal.reason;
    if (wait > 0) await sleep(wait, undefined, signal ? { signal } : undefined);
  },
};
