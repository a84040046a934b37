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

/** One turn of the event loop: every pending promise callback runs before it resolves. */
const nextTurn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The virtual timer of a `DeadlineScheduler` (domain/scheduler.ts), for tests and simulations: the armed
 * timer fires on the next turn of the event loop (once every stream has run as far as it can without
 * time passing), with the virtual time jumped to the armed time plus an optional injected lateness (a
 * busy event loop). Unlike `VirtualClock`, concurrent sleepers see one consistent time line, in
 * deadline order, because the scheduler has only this one timer.
 */
export class VirtualTimers {
  private t: number;
  private generation = 0;
  /** How many times the timer fired (the scheduler's wake-ups). */
  wakeUps = 0;
  constructor(
    start = 0,
    private readonly lateness: (atMs: number) => number = () => 0,
  ) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  /** Let virtual time pass without a timer (e.g. a source that stalls). */
  advance(ms: number): void {
    this.t += ms;
  }
  arm(atMs: number, fire: () => void): void {
    const generation = ++this.generation;
    void nextTurn().then(() => {
      if (generation !== this.generation) return;
      this.generation++;
      this.t = Math.max(this.t, atMs + Math.max(0, this.lateness(atMs)));
      this.wakeUps++;
      fire();
    });
  }
  disarm(): void {
    this.generation++;
  }
}
