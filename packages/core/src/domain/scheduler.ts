import type { Clock } from './clock';

/**
 * What a deadline scheduler needs from its platform: the monotonic time and ONE timer. The system
 * implementation (adapters/system-clock.ts) is a Node timer; `VirtualTimers` (domain/clock.ts) is the
 * virtual one the tests drive.
 */
export interface TimerHost {
  now(): number;
  /** Call `fire` once, at or after the monotonic time `atMs` (never before); replaces the timer armed before. */
  arm(atMs: number, fire: () => void): void;
  /** Cancel the armed timer, if any. */
  disarm(): void;
}

/** A stream's place in the chunk period, held while the stream runs. */
export interface PhaseLease {
  /** The stream's start, moved forward onto its phase: `requestedStartMs + offsetMs`. */
  readonly startMs: number;
  /** How far the start moved: 0 ≤ offsetMs < periodMs. */
  readonly offsetMs: number;
  /** Give the phase back (idempotent); call when the stream ends, however it ends. */
  release(): void;
}

/** A clock that also spreads paced streams over the chunk period (see `DeadlineScheduler.reservePhase`). */
export interface PhasedClock extends Clock {
  reservePhase(requestedStartMs: number, periodMs: number): PhaseLease;
}

export function isPhasedClock(clock: Clock): clock is PhasedClock {
  return typeof (clock as Partial<PhasedClock>).reservePhase === 'function';
}

export interface DeadlineSchedulerOptions {
  /** Width of a phase slot in ms (a period of P ms has floor(P / phaseSlotMs) slots). Default 1. */
  phaseSlotMs?: number;
}

const mod = (a: number, n: number): number => ((a % n) + n) % n;

interface Sleeper {
  due: number;
  seq: number;
  /** Position in the heap; -1 once it left it. */
  pos: number;
  resolve: () => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/**
 * One scheduler of deadlines for a whole process: every `sleepUntil` of every stream goes into one
 * min-heap ordered by (deadline, arrival), and only the earliest deadline has a timer. When it fires,
 * every sleeper whose deadline has passed wakes in deadline order, in the same turn of the event loop
 * (so the sends that fall due together go out together), and the timer is re-armed once for the next
 * deadline. No sleeper ever wakes before its deadline: the host never fires early, and a sleeper is
 * woken only when `now() >= due`.
 *
 * Phases: streams started together would share every deadline (start + n × period) and all wake in one
 * burst each period, the last of the burst late by the whole burst's work. `reservePhase` moves a stream's
 * start forward (never back: nothing is sent earlier than it would have been) onto the least-loaded of
 * the period's slots on an absolute grid (slot k of period P covers times ≡ k × P/slots mod P), nearest
 * first, so concurrent streams' deadlines are spread evenly over the period whenever they started.
 */
export class DeadlineScheduler implements PhasedClock {
  private readonly heap: Sleeper[] = [];
  private seq = 0;
  private armedAt = Infinity;
  private readonly slotMs: number;
  /** Per period length: how many running streams hold each slot. */
  private readonly phaseLoad = new Map<number, Uint32Array>();
  private readonly fireBound = () => this.fire();

  constructor(
    private readonly host: TimerHost,
    opts: DeadlineSchedulerOptions = {},
  ) {
    this.slotMs = opts.phaseSlotMs ?? 1;
    if (!(this.slotMs > 0)) throw new RangeError(`phaseSlotMs must be > 0, got ${this.slotMs}`);
  }

  now(): number {
    return this.host.now();
  }

  /** Sleepers waiting (for tests and metrics). */
  get pending(): number {
    return this.heap.length;
  }

  sleepUntil(deadlineMs: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (deadlineMs <= this.host.now()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const s: Sleeper = { due: deadlineMs, seq: this.seq++, pos: -1, resolve, signal, onAbort: undefined };
      if (signal) {
        s.onAbort = () => {
          this.remove(s);
          reject(signal.reason);
        };
        signal.addEventListener('abort', s.onAbort, { once: true });
      }
      this.push(s);
      if (s.pos === 0) this.arm();
    });
  }

  /**
   * Reserve a phase for a stream that would start at `requestedStartMs` and sends one chunk every
   * `periodMs`: its start moves forward by 0 ≤ offset < periodMs onto the least-loaded slot (ties: the
   * nearest), and its deadlines `start + n × periodMs` stay on that slot.
   */
  reservePhase(requestedStartMs: number, periodMs: number): PhaseLease {
    if (!(periodMs > 0) || !Number.isFinite(periodMs) || !Number.isFinite(requestedStartMs)) {
      return { startMs: requestedStartMs, offsetMs: 0, release: () => undefined };
    }
    const slots = Math.max(1, Math.floor(periodMs / this.slotMs));
    const width = periodMs / slots;
    let load = this.phaseLoad.get(periodMs);
    if (!load) this.phaseLoad.set(periodMs, (load = new Uint32Array(slots)));
    // The first grid point at or after the requested start, then the least-loaded slot from there on.
    const first = Math.ceil(requestedStartMs / width);
    let best = 0;
    let bestLoad = Infinity;
    for (let k = 0; k < slots; k++) {
      const l = load[mod(first + k, slots)]!;
      if (l < bestLoad) {
        best = k;
        bestLoad = l;
        if (l === 0) break;
      }
    }
    const slot = mod(first + best, slots);
    load[slot]! += 1;
    const startMs = Math.max(requestedStartMs, (first + best) * width);
    let held = true;
    const table = load;
    return {
      startMs,
      offsetMs: startMs - requestedStartMs,
      release: () => {
        if (!held) return;
        held = false;
        table[slot]! -= 1;
      },
    };
  }

  /** How many streams hold each slot of `periodMs` (a copy; for tests and metrics). */
  phaseLoads(periodMs: number): number[] {
    return [...(this.phaseLoad.get(periodMs) ?? [])];
  }

  private fire(): void {
    this.armedAt = Infinity;
    const now = this.host.now();
    const due: Sleeper[] = [];
    while (this.heap.length > 0 && this.heap[0]!.due <= now) due.push(this.pop());
    this.arm();
    for (const s of due) {
      if (s.onAbort) s.signal!.removeEventListener('abort', s.onAbort);
      s.resolve();
    }
  }

  /** Keep the one timer on the earliest deadline (none when nobody waits). */
  private arm(): void {
    const head = this.heap[0];
    if (!head) {
      if (this.armedAt !== Infinity) this.host.disarm();
      this.armedAt = Infinity;
      return;
    }
    if (head.due === this.armedAt) return;
    this.armedAt = head.due;
    this.host.arm(head.due, this.fireBound);
  }

  // ---- the binary min-heap on (due, seq) ------------------------------------------------------------
  private before(a: Sleeper, b: Sleeper): boolean {
    return a.due < b.due || (a.due === b.due && a.seq < b.seq);
  }

  private push(s: Sleeper): void {
    s.pos = this.heap.length;
    this.heap.push(s);
    this.up(s.pos);
  }

  private pop(): Sleeper {
    const top = this.heap[0]!;
    this.removeAt(0);
    return top;
  }

  private remove(s: Sleeper): void {
    if (s.pos < 0) return;
    const wasHead = s.pos === 0;
    this.removeAt(s.pos);
    if (wasHead) this.arm();
  }

  private removeAt(i: number): void {
    const h = this.heap;
    const gone = h[i]!;
    const last = h.pop()!;
    gone.pos = -1;
    if (i < h.length) {
      h[i] = last;
      last.pos = i;
      this.down(i);
      this.up(last.pos);
    }
  }

  private up(i: number): void {
    const h = this.heap;
    const s = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p]!;
      if (!this.before(s, parent)) break;
      h[i] = parent;
      parent.pos = i;
      i = p;
    }
    h[i] = s;
    s.pos = i;
  }

  private down(i: number): void {
    const h = this.heap;
    const n = h.length;
    const s = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.before(h[r]!, h[l]!) ? r : l;
      const child = h[c]!;
      if (!this.before(child, s)) break;
      h[i] = child;
      child.pos = i;
      i = c;
    }
    h[i] = s;
    s.pos = i;
  }
}
