/**
 * Plans kept and run (issue 15): a plan is stored (PlanStore, PLAN_TTL_SECONDS) when it is made, read
 * back by its id for `GET /v1/plans/{id}`, and turned into the create-batch request of one of its
 * choices for `scribe enqueue --plan <id> [--choice N]`.
 */
import { InvalidRequestError, PlanNotFoundError } from '../domain/errors';
import type { PlanStore } from '../ports/plan-store';
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
  return { ...plan.request, source: plan.source, provider: c.provider, model: c.model, mode: c.mode, account: c.account };
}
