/**
 * A batch beside the plan it was made from (issue 15: the dashboard shows the plan next to a batch's
 * progress). Pure: the plan's figures for the choice the batch runs, next to what the batch has done
 * and where it is heading.
 *
 * - audio: the plan's estimate (with its 95 % interval) vs the audio transcribed so far and the
 *   projected total, batchProgress's (audio per byte so far × all bytes; exact once finished);
 * - cost: the plan's estimate vs actual audio × the choice's price as the plan recorded it (so a
 *   price change since the plan does not show up as drift), so far and projected;
 * - time: the plan's wall time vs the batch's elapsed time plus its ETA (both counted from the
 *   batch's creation, as batchProgress counts its rate), and the planned end (created + planned wall
 *   time) vs the projected one (now + ETA).
 * While the batch is still listing its source, its total and bytes still grow: nothing is projected
 * then (null), as the dashboard shows no ETA then either.
 *
 * The link itself (`PlanLink`) is what a batch record keeps: the plan id and the 1-based choice.
 */
import type { BatchProgress, BatchRecord } from './batch';
import { isPlanId, type Range } from './plan';

/** Which plan (and which of its choices, 1-based) a batch was made from. */
export interface PlanLink {
  id: string;
  choice: number;
}

/**
 * A link read back from storage (a JSON string, or an object): a well-formed link, or undefined for
 * anything else (absent, not JSON, a wrong shape): a damaged field never fails reading its batch.
 */
export function parsePlanLink(raw: unknown): PlanLink | undefined {
  let v: unknown = raw;
  if (typeof raw === 'string') {
    try {
      v = JSON.parse(raw);
    } catch {
      return undefined;
    }
  }
  if (v === null || typeof v !== 'object') return undefined;
  const { id, choice } = v as Record<string, unknown>;
  return isPlanId(id) && typeof choice === 'number' && Number.isInteger(choice) && choice >= 1 ? { id: id as string, choice } : undefined;
}

/** What of a plan the comparison reads (app/plan-batch.ts `Plan` has all of it). */
export interface PlannedFigures {
  planId: string;
  files: { toDo: number };
  audio: { method: 'exact' | 'sampled'; seconds: Range };
  choices: ReadonlyArray<{
    provider: string;
    model: string;
    mode: string;
    account: string;
    costUsd: Range | null;
    wallSeconds: Range;
    price: { usdPerMinute: number } | null;
  }>;
}

/** Where a projection falls against the plan's interval (widened by PLAN_TOLERANCE). */
export type Versus = 'below' | 'within' | 'above';

/**
 * The slack around the plan's interval before a projection counts as off the plan: an exact plan's
 * interval is a point, and its durations match the decoded ones within 1 %.
 */
export const PLAN_TOLERANCE = 0.01;

export interface PlanProgress {
  planId: string;
  /** 1-based, as in the link. */
  choice: number;
  provider: string;
  model: string;
  mode: string;
  account: string;
  /** How the plan measured the audio. */
  method: 'exact' | 'sampled';
  /** False when the batch does not run the choice's provider, model and mode (a hand-made link). */
  sameRouting: boolean;
  /** Files the plan would transcribe (not counting those already done), and the batch's files (every listed one, skipped ones too). */
  files: { planned: number; batch: number };
  audioSeconds: { planned: Range; done: number; projected: number | null; versus: Versus | null };
  /** Null when the plan had no price for the choice. */
  costUsd: { planned: Range; usdPerMinute: number; done: number; projected: number | null; versus: Versus | null } | null;
  wallSeconds: { planned: Range; elapsed: number; etaSeconds: number | null; projected: number | null; versus: Versus | null };
  /** The batch's creation + the plan's wall time, and now + the batch's ETA (null while unknown). */
  plannedEndAt: string;
  projectedEndAt: string | null;
}

/** Where `x` falls against `r` widened by PLAN_TOLERANCE (null when there is no `x`). */
export function versusPlan(x: number | null, r: Range, tolerance = PLAN_TOLERANCE): Versus | null {
  if (x === null || !Number.isFinite(x)) return null;
  if (x < r.low * (1 - tolerance)) return 'below';
  if (x > r.high * (1 + tolerance)) return 'above';
  return 'within';
}

const usd = (audioSeconds: number, usdPerMinute: number) => (audioSeconds / 60) * usdPerMinute;

/**
 * The plan's figures for `link.choice` beside the batch's progress; null when the plan has no such
 * choice (the link is then not the plan's: nothing to compare).
 */
export function planProgress(plan: PlannedFigures, link: PlanLink, batch: BatchRecord, progress: BatchProgress, now: number): PlanProgress | null {
  const c = plan.choices[link.choice - 1];
  if (!c || plan.planId !== link.id) return null;
  const finished = batch.status !== 'running';
  const created = Date.parse(batch.createdAt);
  const end = batch.finishedAt ? Date.parse(batch.finishedAt) : now;
  const elapsed = Math.max(0, (end - created) / 1000);
  // Listing: the batch's total and bytes are still growing, so are not projected from.
  const settled = finished || batch.listing !== true;
  const projectedAudio = settled ? (finished ? progress.audioSecondsDone : progress.audioSecondsTotalEstimate) : null;
  const eta = finished ? 0 : settled ? progress.etaSeconds : null;
  const projectedWall = eta === null ? null : elapsed + eta;
  const price = c.price;
  return {
    planId: plan.planId,
    choice: link.choice,
    provider: c.provider,
    model: c.model,
    mode: c.mode,
    account: c.account,
    method: plan.audio.method,
    sameRouting: c.provider === batch.provider && c.mode === batch.mode && (batch.model === undefined || batch.model === c.model),
    files: { planned: plan.files.toDo, batch: batch.total },
    audioSeconds: { planned: plan.audio.seconds, done: progress.audioSecondsDone, projected: projectedAudio, versus: versusPlan(projectedAudio, plan.audio.seconds) },
    costUsd:
      price && c.costUsd
        ? {
            planned: c.costUsd,
            usdPerMinute: price.usdPerMinute,
            done: usd(progress.audioSecondsDone, price.usdPerMinute),
            projected: projectedAudio === null ? null : usd(projectedAudio, price.usdPerMinute),
            // Cost is audio × one price: it is off the plan exactly when the audio is.
            versus: versusPlan(projectedAudio, plan.audio.seconds),
          }
        : null,
    wallSeconds: { planned: c.wallSeconds, elapsed, etaSeconds: finished ? null : eta, projected: projectedWall, versus: versusPlan(projectedWall, c.wallSeconds) },
    plannedEndAt: new Date(created + Math.round(c.wallSeconds.estimate * 1000)).toISOString(),
    projectedEndAt: finished ? (batch.finishedAt ?? null) : eta === null ? null : new Date(now + Math.round(eta * 1000)).toISOString(),
  };
}
