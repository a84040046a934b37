/** Clock port: monotonic milliseconds and absolute-deadline sleeps. */
export interface Clock {
  /** Monotonic time in milliseconds (not wall time). */
  now(): number;
  /** Resolve at (or after) the monotonic time `deadlineMs`; rejects with the signal's reason if aborted. */
  sleepUntil(deadlineMs: number, signal?: AbortSignal): Promise<void>;
}

/**
 * A virtual clock for tests and simulations: sleeping advances time instantly to the deadline,
 * plus an optional injected lateness (to model a busy event loop) that the pacing logic must absorb.
 */
export class VirtualClock implements Clock {
  private t: number;
  constructor(
    start = 0,
    private readonly lateness: (deadlineMs: number) => number = () => 0,
  ) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  async sleepUntil(deadlineMs: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw signal.reason;
    const target = Math.max(this.t, deadlineMs) + Math.max(0, this.lateness(deadlineMs));
    this.t = Math.max(this.t, target);
    await Promise.resolve();
  }
}
