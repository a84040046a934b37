import { performance } from 'node:perf_hooks';
import { DeadlineScheduler, type PhasedClock, type TimerHost } from '../domain/scheduler';

/**
 * The one Node timer under the process's deadline scheduler. `setTimeout` counts whole milliseconds
 * from the event loop's cached time, so it can fire a fraction of a millisecond before the deadline
 * (by `performance.now()`): then the rest, under a millisecond, is waited with `setImmediate` (a short
 * poll, not another whole-millisecond timer that would make the wake-up a millisecond late). Only that
 * remainder is polled: a wait of a millisecond or more always sleeps in `setTimeout`.
 */
export class NodeTimerHost implements TimerHost {
  private timeout: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private at = 0;
  private fire: (() => void) | undefined;
  private readonly tickBound = () => this.tick();
  /** Counters (for the pacing bench): timers armed, polls after a timer fired early, wake-ups. */
  readonly stats = { timeouts: 0, polls: 0, fired: 0 };

  now(): number {
    return performance.now();
  }

  arm(atMs: number, fire: () => void): void {
    this.disarm();
    this.at = atMs;
    this.fire = fire;
    this.wait(false);
  }

  disarm(): void {
    if (this.timeout) clearTimeout(this.timeout);
    if (this.immediate) clearImmediate(this.immediate);
    this.timeout = this.immediate = this.fire = undefined;
  }

  private wait(firedEarly: boolean): void {
    const left = this.at - performance.now();
    if (left <= 0 || (firedEarly && left < 1)) {
      this.stats.polls++;
      this.immediate = setImmediate(this.tickBound);
    } else {
      this.stats.timeouts++;
      this.timeout = setTimeout(this.tickBound, Math.max(1, Math.ceil(left)));
    }
  }

  private tick(): void {
    this.timeout = this.immediate = undefined;
    if (performance.now() < this.at) return this.wait(true);
    const fire = this.fire;
    this.fire = undefined;
    this.stats.fired++;
    fire?.();
  }
}

/**
 * The real monotonic clock (performance.now) of the process: ONE deadline scheduler shared by every
 * paced stream and every other sleep of the process, with one timer on the earliest deadline, and the
 * phase table that spreads streams over the chunk period (domain/scheduler.ts).
 */
export const systemTimer = new NodeTimerHost();
export const systemClock: PhasedClock = new DeadlineScheduler(systemTimer);
