import type { Clock } from './clock';

/**
 * Aborts its `signal` when `touch()` has not been called for `idleMs` of the clock's time: a bound by
 * progress, not by total time (a two-hour stream that keeps reading audio runs for two hours; a session
 * that stops moving is caught after `idleMs`, however young it is). One sleep on the clock at a time;
 * `stop()` ends it. On a scheduler clock (the system clock, or VirtualTimers in tests) the sleep is one
 * entry of the process's deadline heap.
 */
export class IdleWatchdog {
  private last: number;
  private readonly fired = new AbortController();
  private readonly stopped = new AbortController();

  constructor(
    private readonly clock: Clock,
    private readonly idleMs: number,
    private readonly reason: (idleMs: number) => Error,
  ) {
    if (!(idleMs > 0)) throw new RangeError(`idleMs must be > 0, got ${idleMs}`);
    this.last = clock.now();
    void this.run();
  }

  /** Aborted (with `reason(idle)`) once the watched work has been idle for `idleMs`. */
  get signal(): AbortSignal {
    return this.fired.signal;
  }

  /** The watched work moved. */
  touch(): void {
    this.last = this.clock.now();
  }

  stop(): void {
    this.stopped.abort();
  }

  private async run(): Promise<void> {
    try {
      while (!this.stopped.signal.aborted) {
        const now = this.clock.now();
        const due = this.last + this.idleMs;
        if (now >= due) {
          this.fired.abort(this.reason(now - this.last));
          return;
        }
        await this.clock.sleepUntil(due, this.stopped.signal);
      }
    } catch {
      // stopped while sleeping
    }
  }
}
