/**
 * Finalize waits bounded by progress (see FinalizeLimits): the wait that ends every streaming session,
 * Deepgram live's too. The deadline arithmetic is pure on a Clock, so a VirtualClock can drive it.
 */
import type { Clock } from '../../../domain/clock';
import { ProviderTimeoutError } from '../../../domain/errors';

/**
 * How long a stream's finalize handshake (AssemblyAI Terminate → Termination, Fireworks final
 * checkpoint → echo, Deepgram CloseStream → Metadata → close) may take. A provider that is still
 * sending results is slow, not stuck: the session is stuck only after `idleMs` without any message
 * from the provider. The whole wait is also capped at `idleMs + msPerAudioSecond × the audio seconds
 * sent that no final result covered yet` (`finalizeTotalMs`), so a provider that keeps talking without
 * ever finishing cannot hold the session forever. The cap counts from the last *progress*: each final
 * result that covers more audio re-arms it for the audio still pending, so a provider that lags the
 * stream (an overloaded one finalising 30 s behind) but keeps finalising is never cut off, while one
 * that only sends interims or keep-alives is.
 */
export interface FinalizeLimits {
  /** FINALIZE_IDLE_MS: longest silence from the provider (default 20 000). */
  idleMs: number;
  /** FINALIZE_MS_PER_AUDIO_SECOND: extra total wait per second of audio not yet final (default 1 000). */
  msPerAudioSecond: number;
}

export const DEFAULT_FINALIZE_LIMITS: FinalizeLimits = { idleMs: 20_000, msPerAudioSecond: 1_000 };

/** The finalize limits of a client: its explicit per-client idle override wins over the fleet setting. */
export function finalizeLimits(opts: { finalizeIdleMs?: number; finalizeMsPerAudioSecond?: number }, idleOverride?: number): FinalizeLimits {
  return {
    idleMs: idleOverride ?? opts.finalizeIdleMs ?? DEFAULT_FINALIZE_LIMITS.idleMs,
    msPerAudioSecond: opts.finalizeMsPerAudioSecond ?? DEFAULT_FINALIZE_LIMITS.msPerAudioSecond,
  };
}

/** The cap on a whole finalize wait, given the audio seconds sent but not yet covered by a final result. */
export function finalizeTotalMs(limits: FinalizeLimits, pendingAudioSeconds: number): number {
  return Math.round(limits.idleMs + limits.msPerAudioSecond * Math.max(0, pendingAudioSeconds));
}

export type ProgressExpiry = 'idle' | 'total';

/**
 * The deadline arithmetic on a Clock (pure, so a VirtualClock can drive it): started at construction,
 * `touch()` on every frame from the provider, `progress(ms)` when a frame advanced the work; expired
 * when `idleMs` passed since the later of the start and the last touch, or the total cap passed: `totalMs`
 * from the start, re-armed by each `progress(ms)` to `ms` from then.
 */
export class ProgressDeadline {
  readonly startedAt: number;
  private lastActivity: number;
  private totalEnd: number;
  private lastProgress: number;

  constructor(
    private readonly clock: Clock,
    readonly idleMs: number,
    totalMs: number,
  ) {
    this.startedAt = clock.now();
    this.lastActivity = this.startedAt;
    this.totalEnd = this.startedAt + totalMs;
    this.lastProgress = this.startedAt;
  }

  touch(): void {
    this.lastActivity = Math.max(this.lastActivity, this.clock.now());
  }

  /** The work advanced: the total cap becomes `totalMsFromNow` from now. */
  progress(totalMsFromNow: number): void {
    this.touch();
    this.lastProgress = this.clock.now();
    this.totalEnd = this.lastProgress + totalMsFromNow;
  }

  /** When the work last advanced (the start until a `progress`), counted from the start. */
  get progressAt(): number {
    return this.lastProgress - this.startedAt;
  }

  /** The total cap as it stands, counted from the start. */
  get totalMs(): number {
    return this.totalEnd - this.startedAt;
  }

  /** The next moment the deadline can expire (the watchdog re-checks whenever it wakes). */
  get deadline(): number {
    return Math.min(this.lastActivity + this.idleMs, this.totalEnd);
  }

  get elapsedMs(): number {
    return this.clock.now() - this.startedAt;
  }

  expired(): ProgressExpiry | undefined {
    const now = this.clock.now();
    if (now >= this.totalEnd) return 'total';
    if (now >= this.lastActivity + this.idleMs) return 'idle';
    return undefined;
  }
}

export interface ProgressTimeout {
  reason: ProgressExpiry;
  idleMs: number;
  /** The total cap, counted from the start. */
  totalMs: number;
  /** When the work last advanced, counted from the start (0 without progress). */
  progressAtMs: number;
  elapsedMs: number;
}

export interface WithinProgressOptions {
  clock: Clock;
  idleMs: number;
  totalMs: number;
  /** Register `onFrame` to be called on every frame from the provider; returns the unsubscribe. */
  activity: (onFrame: () => void) => () => void;
  /**
   * Read after each frame has been handled: a number when that frame advanced the work, the total cap
   * from now on (see ProgressDeadline.progress); undefined when it did not.
   */
  progressed?: () => number | undefined;
  onTimeout: (t: ProgressTimeout) => Error;
  /** Aborting rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Await `p` while the provider makes progress: reject with `onTimeout(…)` once no frame has arrived
 * for `idleMs`, or `totalMs` have passed in all (see ProgressDeadline), or with the signal's reason.
 * Sleeps on `clock`, waking at the current deadline and re-checking (a touch only moves the deadline
 * later); progress, which can also bring the total cap nearer, wakes the sleep at once.
 */
export async function withinProgress<T>(p: Promise<T>, o: WithinProgressOptions): Promise<T> {
  const deadline = new ProgressDeadline(o.clock, o.idleMs, o.totalMs);
  const progressed = o.progressed;
  let wake = new AbortController();
  const unsubscribe = o.activity(() => {
    deadline.touch();
    // The frame's own handler runs after the activity listeners; read its effect once it has.
    if (progressed) queueMicrotask(() => {
      const ms = progressed();
      if (ms === undefined) return;
      deadline.progress(ms);
      wake.abort();
    });
  });
  const done = new AbortController();
  const watchdog = (async (): Promise<never> => {
    while (!done.signal.aborted) {
      wake = new AbortController();
      const sleepSignal = AbortSignal.any(o.signal ? [done.signal, wake.signal, o.signal] : [done.signal, wake.signal]);
      if (o.signal?.aborted) throw o.signal.reason;
      const why = deadline.expired();
      if (why) throw o.onTimeout({ reason: why, idleMs: o.idleMs, totalMs: Math.round(deadline.totalMs), progressAtMs: Math.round(deadline.progressAt), elapsedMs: Math.round(deadline.elapsedMs) });
      try {
        await o.clock.sleepUntil(deadline.deadline, sleepSignal);
      } catch (e) {
        if (o.signal?.aborted) throw o.signal.reason;
        if (!done.signal.aborted && !wake.signal.aborted) throw e;
      }
    }
    throw new Error('withinProgress: over'); // the race is decided; nobody reads this
  })();
  watchdog.catch(() => {});
  try {
    return await Promise.race([p, watchdog]);
  } finally {
    done.abort();
    unsubscribe();
  }
}

export interface FinalizeWaitOptions {
  provider: string;
  /** For messages: what is awaited, after which request (e.g. `Termination` after `Terminate`). */
  awaiting: string;
  after: string;
  clock: Clock;
  limits: FinalizeLimits;
  /** Audio seconds sent that no final result covers yet, read at the start and after every frame (sets the total cap). */
  pendingAudioSeconds: () => number;
  activity: (onFrame: () => void) => () => void;
  signal?: AbortSignal;
}

/** A finalize handshake's wait (see FinalizeLimits): `withinProgress`, timing out with PROVIDER_TIMEOUT. */
export function finalizeWithinProgress<T>(p: Promise<T>, o: FinalizeWaitOptions): Promise<T> {
  let pending = Math.max(0, o.pendingAudioSeconds());
  const wait: WithinProgressOptions = {
    clock: o.clock,
    idleMs: o.limits.idleMs,
    totalMs: finalizeTotalMs(o.limits, pending),
    activity: o.activity,
    // A final result that covers more audio is progress: the cap re-arms for what is still pending.
    progressed: () => {
      const now = Math.max(0, o.pendingAudioSeconds());
      if (now >= pending) return undefined;
      pending = now;
      return finalizeTotalMs(o.limits, pending);
    },
    onTimeout: (t) =>
      new ProviderTimeoutError(
        t.reason === 'idle'
          ? `${o.provider}: no ${o.awaiting} within ${t.idleMs} ms of the server's last message (${t.elapsedMs} ms after ${o.after})`
          : `${o.provider}: no ${o.awaiting} within ${t.totalMs} ms after ${o.after} (the bound for ${pending.toFixed(1)} s of audio not yet final, counted from the last final result), although the server kept sending`,
        { details: { reason: t.reason, idleMs: t.idleMs, totalMs: t.totalMs, progressAtMs: t.progressAtMs, elapsedMs: t.elapsedMs, pendingAudioSeconds: pending } },
      ),
  };
  if (o.signal) wait.signal = o.signal;
  return withinProgress(p, wait);
}
