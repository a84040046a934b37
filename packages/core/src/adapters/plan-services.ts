/**
 * The plan use cases (app/plans.ts) composed: the PlanStore over the producer's Redis connection,
 * the price table (PRICES_FILE read once, validated; a bad file is a ConfigError naming it), the
 * speeds (PLAN_SPEEDS) and the duration measurement (a ranged GET and the header, else ffprobe over
 * the streamed object: app/probe-duration.ts, adapters/s3/ffmpeg-audio-probe.ts).
 */
import type { BatchProgress, BatchRecord } from '../domain/batch';
import type { Config } from '../domain/config';
import type { Plan, PlanRequest } from '../app/plan-batch';
import { createPlan, getPlan, planBeside, planRequest, type PlansDeps } from '../app/plans';
import type { PlanProgress } from '../domain/plan-progress';
import type { CreateBatchRequest } from '../app/validate';
import type { Storage } from '../ports/storage';
import { probeDuration } from '../app/probe-duration';
import { ffmpegAudioProbe } from './s3/ffmpeg-audio-probe';
import { RedisPlanStore } from './redis/plan-store';
import type { RedisClient } from './redis/connection';
import { RedisKeys } from './redis/keys';
import { loadPrices } from './price-table';

// Where it was first defined; the price table is read by more than the plans now.
export { loadPrices };

export interface PlanServices {
  create(req: PlanRequest): Promise<Plan>;
  get(planId: string): Promise<Plan>;
  /** The create-batch request of a stored plan's choice (1-based). */
  request(planId: string, choice?: number): Promise<CreateBatchRequest>;
}

/** Reading a batch's plan beside its progress (null: no plan, or it expired). */
export interface PlanReader {
  beside(batch: BatchRecord, progress: BatchProgress): Promise<PlanProgress | null>;
}

/** Only the stored plans (no prices, no probes): what GET /v1/batches/{id} and the dashboard need. */
export function openPlanReader(deps: { config: Pick<Config, 'QUEUE_PREFIX' | 'QUEUE_NAME'>; redis: RedisClient }): PlanReader {
  const plans = new RedisPlanStore(deps.redis, RedisKeys.forQueue(deps.config).base);
  return { beside: (batch, progress) => planBeside({ plans }, batch, progress) };
}

export function openPlans(deps: { config: Config; storage: Storage; redis: RedisClient }): PlanServices {
  const { config, storage } = deps;
  const probe = ffmpegAudioProbe();
  const plansDeps: PlansDeps = {
    config,
    storage,
    plans: new RedisPlanStore(deps.redis, RedisKeys.forQueue(config).base),
    measure: (obj, exact) => probeDuration({ storage, probe }, obj.bucket, obj.key, { ...(obj.size !== undefined ? { size: obj.size } : {}), ...(obj.etag ? { etag: obj.etag } : {}), exact }),
    prices: loadPrices(config),
    speeds: config.PLAN_SPEEDS,
  };
  return {
    create: (req) => createPlan(plansDeps, req),
    get: (id) => getPlan(plansDeps, id),
    request: (id, choice) => planRequest(plansDeps, id, choice),
  };
}
