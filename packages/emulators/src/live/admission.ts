/**
 * Admission of one streaming session that passed its provider's auth and parameter checks, the same
 * order for every streaming emulator:
 *   1. a scripted fault (`429-storm` → the provider's too-many answer, counted as a refusal of the key;
 *      `5xx[=S]` → its server-error answer);
 *   2. a recogniser from the pool (`tryAcquire`): at capacity the provider's too-many answer, as a real
 *      service answers at its concurrency limit (counted as a refusal of the key and in the pool's stats);
 *      a `never-answer` session runs no recogniser and takes none;
 *   3. the provider's own limits (`overLimit`, e.g. AssemblyAI's new sessions per minute) and the per-key
 *      cap (`ConcurrencyTracker.enter`).
 * A refused session gives back what it took (the fault hit is refunded when it could not apply). An
 * admitted one gets `release`, which gives back the slot and the per-key count exactly once.
 */
import type { ConcurrencyTracker, FaultHit, FaultPlan } from '../kit';
import { RecogniserPool } from '../kit';

export type RecognisersOption = number | RecogniserPool;

/** The pool of an emulator: the one given, one of the given size, or one sized from the cores. */
export function recogniserPool(opt?: RecognisersOption): RecogniserPool {
  if (opt instanceof RecogniserPool) return opt;
  return opt === undefined ? new RecogniserPool() : new RecogniserPool(opt);
}

export interface AdmissionAnswers {
  /** The provider's too-many-sessions answer (storm fault, capacity, account cap). */
  tooMany(): void | Promise<void>;
  /** The provider's server-error answer to a `5xx[=S]` fault (`status` absent: its default). */
  serverError(status: number | undefined): void | Promise<void>;
}

export interface Admitted {
  /** The scripted fault still to apply to the session (`never-answer`, `drop-after`), if any. */
  hit: FaultHit | undefined;
  /** Give back the recogniser slot and the per-key count (idempotent). */
  release(): void;
}

export interface AdmissionContext {
  faultPlan: FaultPlan;
  concurrency: ConcurrencyTracker;
  pool: RecogniserPool;
}

/** Admit one session of `key`, or answer the refusal and resolve undefined. */
export async function admit(ctx: AdmissionContext, key: string, answers: AdmissionAnswers, overLimit?: () => boolean): Promise<Admitted | undefined> {
  const hit = ctx.faultPlan.take('ws');
  if (hit?.kind === '429-storm') {
    ctx.concurrency.noteRefusal(key);
    await answers.tooMany();
    return undefined;
  }
  if (hit?.kind === '5xx') {
    await answers.serverError(hit.status);
    return undefined;
  }
  const slot = hit?.kind === 'never-answer' ? () => {} : ctx.pool.tryAcquire();
  if (!slot) {
    hit?.refund();
    ctx.concurrency.noteRefusal(key);
    await answers.tooMany();
    return undefined;
  }
  if (overLimit?.() || !ctx.concurrency.enter(key)) {
    slot();
    hit?.refund();
    await answers.tooMany();
    return undefined;
  }
  let held = true;
  return {
    hit,
    release: () => {
      if (!held) return;
      held = false;
      slot();
      ctx.concurrency.leave(key);
    },
  };
}
