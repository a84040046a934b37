/**
 * Plans kept and run (issue 15): a plan is stored (PlanStore, PLAN_TTL_SECONDS) when it is made, read
 * back by its id for `GET /v1/plans/{id}`, and turned into the create-batch request of one of its
 * choices for `scribe enqueue --plan <id> [--choice N]` (the request carries the link, so the batch
 * records which plan and choice it runs). `planBeside` reads a batch's plan back to compare it with
 * the batch's progress (domain/plan-progress.ts): GET /v1/batches/{id} and the dashboard.
 */
import type { BatchProgress, BatchRecord } from '../domain/batch';
import { InvalidRequestError, PlanNotFoundError } from '../domain/errors';
import { planProgress, type PlanProgress } from '../domain/plan-progress';
import type { PlanStore } from '../ports/plan-store';
import { nowMs, type BatchDeps } from './deps';
import { planBatch, type Plan, type PlanDeps } from './plan-batch';
import { assertPlanId, parseStoredPlan, type CreateBatchRequest, type PlanRequest } from './validate';

export interface PlansDeps extends PlanDeps {
  plans: PlanStore;
}

/** Plan a batch and keep the plan. */
export async function createPlan(deps: PlansDeps, req: PlanRequest): Promise<Plan> {
  const plan = await planBatch(deps, req);
  await deps.plans.save(plan.planId, JSON.stringify(plan), deps.config.PLAN_TTL_SECONDS);
  return plan;
}

/** A stored plan (NOT_FOUND when unknown or expired). */
export async function getPlan(deps: Pick<PlansDeps, 'plans'>, planId: string): Promise<Plan> {
  assertPlanId(planId);
  const raw = await deps.plans.getRaw(planId);
  if (raw === null) throw new PlanNotFoundError(`plan ${planId} not found (plans are kept PLAN_TTL_SECONDS)`);
  return parseStoredPlan(raw);
}

/**
 * The create-batch request that runs choice `choice` (1-based; default 1) of a stored plan. The
 * request is validated again when the batch is created, against the config of the day.
 */
export async function planRequest(deps: Pick<PlansDeps, 'plans'>, planId: string, choice = 1): Promise<CreateBatchRequest> {
  const plan = await getPlan(deps, planId);
  if (plan.source === 'manifest') throw new InvalidRequestError(`plan ${planId} is of a manifest: enqueue the manifest itself (its choices are in the plan)`);
  const c = plan.choices[choice - 1];
  if (!Number.isInteger(choice) || !c) throw new InvalidRequestError(`plan ${planId} has choices 1 to ${plan.choices.length} (got ${choice})`);
  return { ...plan.request, source: plan.source, provider: c.provider, model: c.model, mode: c.mode, account: c.account, plan: { id: planId, choice } };
}

/**
 * The batch's plan beside its progress, or null: no link, or the plan is gone (expired after
 * PLAN_TTL_SECONDS) or unreadable, or has no such choice. Never throws for the plan's sake: the
 * comparison is an addition to the batch's view, which must not fail for it.
 */
export async function planBeside(deps: Pick<PlansDeps, 'plans'> & Partial<Pick<BatchDeps, 'clock'>>, batch: BatchRecord, progress: BatchProgress): Promise<PlanProgress | null> {
  if (!batch.plan) return null;
  let plan: Plan;
  try {
    plan = await getPlan(deps, batch.plan.id);
  } catch (e) {
    if (e instanceof PlanNotFoundError || e instanceof InvalidRequestError) return null;
    throw e;
  }
  return planProgress(plan, batch.plan, batch, progress, nowMs(deps));
}
