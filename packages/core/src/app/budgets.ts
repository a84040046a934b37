/**
 * Budgets at work (issue 15; the rules are domain/budget.ts): admitting a job before its session
 * starts, settling its reservation when it ends, and resuming a batch paused by its budget.
 *
 * A job is admitted under every book it falls under (its batch's, when the batch has limits; its
 * account's book of the day, when SCRIBE_BUDGETS names the account), each reservation atomic in its
 * book. Refused, the job goes back to the queue without spending an attempt (worker host,
 * `BUDGET_PAUSED`) and its batch is marked `paused: budget`; the first job of the batch admitted
 * again clears the mark. Nothing here ever stops a session that has started.
 */
import { accountBudgetFor, budgetDay, costOf, estimateFromSize, hasLimits, limitsOf, msToNextDay, type BudgetLimits, type BudgetUse } from '../domain/budget';
import { BatchNotFoundError, InvalidStateError } from '../domain/errors';
import type { JobSpec } from '../domain/job-spec';
import type { AudioProbe } from '../ports/audio-probe';
import type { BudgetScope } from '../ports/budget-store';
import { nowMs, type BatchDeps } from './deps';
import { probeDuration } from './probe-duration';
import { assertBatchId } from './validate';

export type BudgetDeps = Pick<BatchDeps, 'config' | 'budgets' | 'prices' | 'storage' | 'batches' | 'queue' | 'clock'>;

/** Why a job was not admitted, and when to look again. */
export interface BudgetRefusal {
  scope: 'batch' | 'account';
  /** For the batch's `pausedReason`. */
  reason: string;
  /** Check again after this long (or sooner, when the batch is resumed). */
  retryInMs: number;
}

/** No probe: a duration is read only from the first bytes, never by reading the object through. */
const HEADER_ONLY: AudioProbe = {
  measure: () => Promise.reject(new Error('header only')),
};

/**
 * The audio a job is expected to hold: what its container's first bytes state (one ranged GET), or
 * its size at FALLBACK_BYTES_PER_SECOND. Only asked when a budget applies.
 */
export async function expectedSeconds(deps: Pick<BatchDeps, 'storage'>, spec: JobSpec): Promise<number> {
  const { bucket, key, size, etag, versionId } = spec.source;
  try {
    const d = await probeDuration({ storage: deps.storage, probe: HEADER_ONLY }, bucket, key, { ...(size !== undefined ? { size } : {}), ...(etag ? { etag } : {}), ...(versionId ? { versionId } : {}), maxRangeBytes: 1024 * 1024 });
    return d.seconds;
  } catch {
    // No header answers, or the object cannot be read now (the attempt will say why): from its size.
    return size !== undefined ? estimateFromSize(size) : 0;
  }
}

function accountScope(spec: JobSpec, now: number): BudgetScope {
  return { provider: spec.provider, account: spec.account, day: budgetDay(now) };
}

const hours = (s: number) => `${(s / 3600).toFixed(3)} h`;

/**
 * Admit the job under its budgets, or say why not. Admitted under one book and refused by the next,
 * the job's first reservation is given back. Without any budget that applies, admits at once.
 */
export async function admitJob(deps: BudgetDeps, spec: JobSpec, jobId: string): Promise<{ admitted: true } | ({ admitted: false } & BudgetRefusal)> {
  const store = deps.budgets;
  if (!store) return { admitted: true };
  const now = nowMs(deps);
  const account = accountBudgetFor(deps.config.SCRIBE_BUDGETS, spec.provider, spec.account);
  const batch = spec.batchId ? await store.get(spec.batchId) : null;
  const batchLimited = batch && hasLimits(batch.limits);
  if (!batchLimited && !account) return { admitted: true };
  const seconds = await expectedSeconds(deps, spec);
  const use: BudgetUse = { seconds, costUsd: costOf(deps.prices ?? [], spec, seconds) };
  let accountAdmitted: BudgetScope | null = null;
  if (account) {
    const scope = accountScope(spec, now);
    const a = await store.admit(scope, jobId, use, account);
    if (!a.admitted) {
      await markPaused(deps, spec, `account ${spec.provider}:${spec.account} budget for ${budgetDay(now)}: ${hours(a.book.spentSeconds + a.book.reservedSeconds)} used or running, this file ~${hours(seconds)}`);
      // The day's book is full: look again at the next UTC midnight (or every recheck interval, so a raised SCRIBE_BUDGETS counts).
      return { admitted: false, scope: 'account', reason: 'account budget', retryInMs: Math.min(deps.config.BUDGET_RECHECK_MS, msToNextDay(now) + 1000) };
    }
    accountAdmitted = scope;
  }
  if (batchLimited && spec.batchId) {
    const b = await store.admit({ batchId: spec.batchId }, jobId, use);
    if (!b.admitted) {
      if (accountAdmitted) await store.settle(accountAdmitted, jobId, { seconds: 0, costUsd: 0 });
      await markPaused(deps, spec, `batch budget: ${hours(b.book.spentSeconds)} spent and ${hours(b.book.reservedSeconds)} running of ${budgetText(batch.limits)}; this file ~${hours(seconds)}`);
      return { admitted: false, scope: 'batch', reason: 'batch budget', retryInMs: deps.config.BUDGET_RECHECK_MS };
    }
  }
  if (spec.batchId) await deps.batches.setPaused(spec.batchId, null);
  return { admitted: true };
}

function budgetText(l: BudgetLimits): string {
  return [l.maxAudioSeconds !== undefined ? hours(l.maxAudioSeconds) : '', l.maxCostUsd !== undefined ? `$${l.maxCostUsd}` : ''].filter(Boolean).join(' / ');
}

async function markPaused(deps: Pick<BatchDeps, 'batches'>, spec: JobSpec, reason: string): Promise<void> {
  if (spec.batchId) await deps.batches.setPaused(spec.batchId, { paused: 'budget', reason });
}

/**
 * The job ended (called from jobEnded, every time: only a held reservation counts, so a repeated
 * report adds nothing): a completed job's audio is spent, a failed or cancelled one's reservation
 * returns. The account's book is the day's or the day before's (a job admitted before midnight).
 */
export async function settleJob(deps: Pick<BatchDeps, 'config' | 'budgets' | 'prices' | 'clock'>, spec: Pick<JobSpec, 'batchId' | 'provider' | 'account' | 'model' | 'mode'>, jobId: string, audioSeconds: number): Promise<void> {
  const store = deps.budgets;
  if (!store) return;
  const used: BudgetUse = { seconds: audioSeconds, costUsd: costOf(deps.prices ?? [], spec, audioSeconds) };
  if (spec.batchId) await store.settle({ batchId: spec.batchId }, jobId, used);
  if (accountBudgetFor(deps.config.SCRIBE_BUDGETS, spec.provider, spec.account)) {
    const now = nowMs(deps);
    for (const day of [budgetDay(now), budgetDay(now - 86_400_000)]) {
      if (await store.settle({ provider: spec.provider, account: spec.account, day }, jobId, used)) break;
    }
  }
}

/** What `scribe resume` / `POST /v1/batches/{id}/resume` may change. */
export interface ResumeRequest {
  maxAudioHours?: number;
  maxCost?: number;
  /** Remove the batch's limits. */
  unlimited?: boolean;
}

/**
 * Resume a batch paused by its budget: its limits replaced by the request's (given ones replace,
 * `unlimited` removes both, none keeps them: e.g. after an account's budget was raised), the pause
 * mark cleared, and its waiting jobs promoted so they are admitted again now rather than at their
 * next check. A job that still does not fit pauses the batch again.
 */
export async function resumeBatch(deps: BudgetDeps, batchId: string, req: ResumeRequest): Promise<{ promoted: number }> {
  assertBatchId(batchId);
  const batch = await deps.batches.get(batchId);
  if (!batch) throw new BatchNotFoundError(`batch ${batchId} not found`);
  if (batch.status !== 'running') throw new InvalidStateError(`batch ${batchId} is ${batch.status}: only a running batch can be resumed`);
  const store = deps.budgets;
  if (store && (req.unlimited || req.maxAudioHours !== undefined || req.maxCost !== undefined)) {
    const before = await store.get(batchId);
    const limits: BudgetLimits = req.unlimited ? {} : { ...(before?.limits ?? {}), ...limitsOf(req) };
    // A batch given its first budget now: what it already used counts against it.
    const spent = before ? undefined : { seconds: batch.audioSecondsDone, costUsd: costOf(deps.prices ?? [], { provider: batch.provider as JobSpec['provider'], model: batch.model ?? '', mode: batch.mode as JobSpec['mode'] }, batch.audioSecondsDone) };
    await store.setLimits(batchId, limits, spent);
  }
  await deps.batches.setPaused(batchId, null);
  let promoted = 0;
  for (let offset = 0; ; offset += 500) {
    const ids = await deps.batches.jobIds(batchId, 'queued', offset, 500);
    for (const id of ids) if (await deps.queue.promote(id)) promoted++;
    if (ids.length < 500) break;
  }
  return { promoted };
}
