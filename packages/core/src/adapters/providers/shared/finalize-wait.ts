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
 * ever finishing cannot hold the session forever.
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
 * `touch()` on every frame from the provider; expired when `idleMs` passed since the later of the
 * start and the last touch, or `totalMs` since the start.
 */
export class ProgressDeadline {
  readonly startedAt: number;
  private lastActivity: number;

  constructor(
    private readonly clock: Clock,
    readonly idleMs: number,
    readonly totalMs: number,
  ) {
    this.startedAt = clock.now();
    this.lastActivity = this.startedAt;
  }

  touch(): void {
    this.lastActivity = Math.max(this.lastActivity, this.clock.now());
  }

  /** The next moment the deadline can expire (a touch only moves it later). */
  get deadline(): number {
    return Math.min(this.lastActivity + this.idleMs, this.startedAt + this.totalMs);
  }

  get elapsedMs(): number {
    return this.clock.now() - this.startedAt;
  }

  expired(): ProgressExpiry | undefined {
    const now = this.clock.now();
    if (now >= this.startedAt + this.totalMs) return 'total';
    if (now >= this.lastActivity + this.idleMs) return 'idle';
    return undefined;
  }
}

export interface ProgressTimeout {
  reason: ProgressExpiry;
  idleMs: number;
  totalMs: number;
  elapsedMs: number;
}

export interface WithinProgressOptions {
  clock: Clock;
  idleMs: number;
  totalMs: number;
  /** Register `onFrame` to be called on every frame from the provider; returns the unsubscribe. */
  activity: (onFrame: () => void) => () => void;
  onTimeout: (t: ProgressTimeout) => Error;
  /** Aborting rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Await `p` while the provider makes progress: reject with `onTimeout(…)` once no frame has arrived
 * for `idleMs`, or `totalMs` have passed in all (see ProgressDeadline), or with the signal's reason.
 * Sleeps on `clock`, waking at the current deadline and re-checking, since a frame only moves the
 * deadline later.
 */
export async function withinProgress<T>(p: Promise<T>, o: WithinProgressOptions): Promise<T> {
  const deadline = new ProgressDeadline(o.clock, o.idleMs, o.totalMs);
  const unsubscribe = o.activity(() => deadline.touch());
  const done = new AbortController();
  const sleepSignal = o.signal ? AbortSignal.any([done.signal, o.signal]) : done.signal;
  const watchdog = (async (): Promise<never> => {
    while (!done.signal.aborted) {
      if (o.signal?.aborted) throw o.signal.reason;
      const why = deadline.expired();
      if (why) throw o.onTimeout({ reason: why, idleMs: o.idleMs, totalMs: o.totalMs, elapsedMs: Math.round(deadline.elapsedMs) });
      try {
        await o.clock.sleepUntil(deadline.deadline, sleepSignal);
      } catch (e) {
        if (o.signal?.aborted) throw o.signal.reason;
        if (!done.signal.aborted) throw e;
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
  /** Audio seconds sent that no final result covers yet (sets the total cap). */
  pendingAudioSeconds: number;
  activity: (onFrame: () => void) => () => void;
  signal?: AbortSignal;
}

/** A finalize handshake's wait (see FinalizeLimits): `withinProgress`, timing out with PROVIDER_TIMEOUT. */
export function finalizeWithinProgress<T>(p: Promise<T>, o: FinalizeWaitOptions): Promise<T> {
  const pending = Math.max(0, o.pendingAudioSeconds);
  const wait: WithinProgressOptions = {
    clock: o.clock,
    idleMs: o.limits.idleMs,
    totalMs: finalizeTotalMs(o.limits, pending),
    activity: o.activity,
    onTimeout: (t) =>
      new ProviderTimeoutError(
        t.reason === 'idle'
          ? `${o.provider}: no ${o.awaiting} within ${t.idleMs} ms of the server's last message (${t.elapsedMs} ms after ${o.after})`
          : `${o.provider}: no ${o.awaiting} within ${t.totalMs} ms after ${o.after} (the bound for ${pending.toFixed(1)} s of audio not yet final), although the server kept sending`,
        { details: { reason: t.reason, idleMs: t.idleMs, totalMs: t.totalMs, elapsedMs: t.elapsedMs, pendingAudioSeconds: pending } },
      ),
  };
  if (o.signal) wait.signal = o.signal;
  return withinProgress(p, wait);
}
