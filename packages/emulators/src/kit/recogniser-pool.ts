import { availableParallelism } from 'node:os';

/**
 * How many recognitions an emulator runs at once: its own hardware, not a provider account's cap (those
 * are `ConcurrencyTracker`). A paced real-time stream keeps a recogniser process busy for a fraction of a
 * core, so the default is `STREAMS_PER_CORE` per core. Past it, each emulator answers as its provider
 * does at capacity (a refusal streams can retry), or queues where the provider queues (batch requests
 * wait for a recogniser: a slower answer, as a loaded service gives).
 */
export const STREAMS_PER_CORE = 3;

export function defaultRecognisers(): number {
  return Math.max(1, availableParallelism() * STREAMS_PER_CORE);
}

export class RecogniserPool {
  private used = 0;
  private readonly waiters: Array<{ resolve: (release: () => void) => void; reject: (e: unknown) => void; signal: AbortSignal | undefined; onAbort: () => void }> = [];
  /** Highest number in use at once (stats). */
  maxInUse = 0;
  /** Refusals by `tryAcquire` (stats). */
  refused = 0;

  constructor(readonly capacity: number = defaultRecognisers()) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`recogniser capacity must be an integer >= 1, got ${capacity}`);
  }

  get inUse(): number {
    return this.used;
  }

  get queued(): number {
    return this.waiters.length;
  }

  /**
   * `n` recognisers now (all or none; e.g. one per channel of a multichannel stream), or null when
   * fewer are free (the caller refuses the work as its provider does). The returned function gives
   * them all back.
   */
  tryAcquire(n = 1): (() => void) | null {
    if (this.used + n > this.capacity) {
      this.refused += 1;
      return null;
    }
    const releases = Array.from({ length: n }, () => this.take());
    return n === 1 ? releases[0]! : () => releases.forEach((r) => r());
  }

  /** A recogniser, waiting in FIFO order while all are busy; rejects with the signal's reason on abort. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.used < this.capacity && this.waiters.length === 0) return Promise.resolve(this.take());
    return new Promise((resolve, reject) => {
      const w = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(signal!.reason);
        },
      };
      signal?.addEventListener('abort', w.onAbort, { once: true });
      this.waiters.push(w);
    });
  }

  private take(): () => void {
    this.used += 1;
    this.maxInUse = Math.max(this.maxInUse, this.used);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.used -= 1;
      const next = this.waiters.shift();
      if (next) {
        next.signal?.removeEventListener('abort', next.onAbort);
        next.resolve(this.take());
      }
    };
  }
}
