/** The /v1 routes: batches (create, list, read, jobs, cancel, redrive, webhooks), jobs, plans and usage. */
import type { FastifyInstance } from 'fastify';
import { parseS3Url, type BatchJobState, type BatchProgress, type BatchRecord, type PlanProgress } from '@scribe-fleet/core';
import type { CreateBatchProgress, CreateBatchRequest, CreateBatchResult } from '@scribe-fleet/core/app/batch-service';
import { enqueueBatch } from '../enqueue';
import { toApiError } from './http-errors';
import { openPlanReader, openPlans, type PlanReader } from '@scribe-fleet/core/adapters/plan-services';
import type { PlanRequest } from '@scribe-fleet/core/app/plan-batch';
import { validateResume, type UsageQuery } from '@scribe-fleet/core/app/validate';
import { openUsage } from '@scribe-fleet/core/adapters/usage-services';
import { BatchIdParams, BatchJobsQuery, CreateBatchBody, ResumeBatchBody, CreatePlanBody, JobIdParams, PagingQuery, PlanIdParams, UsageQuerySchema } from './openapi';
import type { ApiContext } from './server';

type Id = { Params: { id: string } };
type Paging = { offset: number; limit: number };

/**
 * What GET /v1/batches/:id (and each item of GET /v1/batches) answers. The one batch's view also
 * has its plan beside its progress (`planProgress`), when it was made from a plan still stored.
 */
export type BatchView = BatchRecord & { progress: BatchProgress; reportDownloadUrl?: string; planProgress?: PlanProgress };

async function batchView(ctx: ApiContext, id: string, detail: PlanReader | null): Promise<BatchView> {
  const { batch, progress } = await ctx.service.getBatch(id);
  const view: BatchView = { ...batch, progress };
  if (detail && batch.plan) {
    const beside = await detail.beside(batch, progress);
    if (beside) view.planProgress = beside;
  }
  if (detail && batch.report) {
    try {
      const loc = parseS3Url(batch.report);
      view.reportDownloadUrl = await ctx.storage.presignGet(loc.bucket, loc.key, 3600);
    } catch {
      // A link is a convenience; the S3 URL is there anyway.
    }
  }
  return view;
}

const ZERO: CreateBatchProgress = { listed: 0, ignored: 0, added: 0, duplicates: 0, skipped: 0 };

export async function registerV1Routes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  const { service } = ctx;
  // Listings still running after their POST answered 202: aborted (after the current page) and
  // awaited when the server closes, so no batch is left open without a reason.
  const background = new Map<Promise<unknown>, AbortController>();
  app.addHook('onClose', async () => {
    for (const ctrl of background.values()) ctrl.abort();
    await Promise.allSettled([...background.keys()]);
  });

  app.post<{ Body: CreateBatchRequest }>('/v1/batches', { schema: { body: CreateBatchBody } }, async (req, reply) => {
    const ctrl = new AbortController();
    let batchId: string | undefined;
    let latest = ZERO;
    let markCreated!: () => void;
    const created = new Promise<void>((r) => (markCreated = r));
    const done = enqueueBatch(
      req.body,
      {
        storage: ctx.storage,
        fleet: ctx.fleet,
        onCreated: (id) => {
          batchId = id;
          markCreated();
        },
        onProgress: (p) => {
          latest = p;
          if (ctrl.signal.aborted) throw new Error('listing interrupted: the API server shut down (enqueue the same source again to add the rest)');
        },
      },
      { service },
    );
    const settled = done.then(
      (r) => ({ ok: true as const, r }),
      (e: unknown) => ({ ok: false as const, e }),
    );
    // Validation errors (and a refused manifest) come before the batch exists: answered as errors.
    const first = await Promise.race([settled, created.then(() => null)]);
    if (first && !first.ok) throw first.e;

    let timer: NodeJS.Timeout | undefined;
    const waited = first ?? (await Promise.race([settled, new Promise<null>((r) => (timer = setTimeout(() => r(null), ctx.config.API_CREATE_WAIT_MS)))]));
    clearTimeout(timer);
    if (waited?.ok) {
      const r: CreateBatchResult = waited.r;
      return reply.code(201).header('location', `/v1/batches/${r.batchId}`).send({ batchId: r.batchId, listing: false, listed: r.listed, ignored: r.ignored, added: r.added, duplicates: r.duplicates, skipped: r.skipped, feeding: r.feeding === true });
    }
    if (waited && !waited.ok) {
      // Storage failed mid-listing: the batch exists (with `listError`) and holds what was enqueued.
      const { status, body } = toApiError(waited.e);
      return reply.code(status).send({ error: { ...body.error, details: { ...(body.error.details ?? {}), batchId } } });
    }
    const running = settled.then((s) => {
      if (!s.ok) req.log.error({ err: s.e, batchId }, 'background listing failed');
    });
    background.set(running, ctrl);
    void running.finally(() => background.delete(running));
    return reply.code(202).header('location', `/v1/batches/${batchId}`).send({ batchId, listing: true, ...latest });
  });

  // Plans: made and kept (nothing enqueued), read back by id.
  const plans = openPlans(ctx);
  app.post<{ Body: PlanRequest }>('/v1/plans', { schema: { body: CreatePlanBody } }, async (req, reply) => {
    const plan = await plans.create(req.body);
    return reply.code(201).header('location', `/v1/plans/${plan.planId}`).send(plan);
  });
  app.get<Id>('/v1/plans/:id', { schema: { params: PlanIdParams } }, async (req) => plans.get(req.params.id));

  // Usage: the workers' usage book by day or by batch, priced from the price table now.
  const usage = openUsage(ctx);
  app.get<{ Querystring: UsageQuery }>('/v1/usage', { schema: { querystring: UsageQuerySchema } }, async (req) => {
    // Only the known parameters (a query string may carry others, e.g. a cache buster); the use case checks them.
    const q: UsageQuery = {};
    for (const k of ['account', 'provider', 'model', 'from', 'to', 'by'] as const) {
      const v = req.query[k];
      if (v !== undefined) q[k] = v;
    }
    return usage.read(q);
  });

  app.get<{ Querystring: Paging }>('/v1/batches', { schema: { querystring: PagingQuery } }, async (req) => {
    const { offset, limit } = req.query;
    const [ids, total] = await Promise.all([service.batches.recent(limit, offset), service.batches.count()]);
    const batches = (await Promise.all(ids.map((id) => batchView(ctx, id, null).catch(() => null)))).filter((b): b is BatchView => b !== null);
    return { total, offset, limit, batches };
  });

  const planReader = openPlanReader(ctx);
  app.get<Id>('/v1/batches/:id', { schema: { params: BatchIdParams } }, async (req) => batchView(ctx, req.params.id, planReader));

  app.get<Id & { Querystring: Paging & { state?: BatchJobState } }>('/v1/batches/:id/jobs', { schema: { params: BatchIdParams, querystring: BatchJobsQuery } }, async (req) => {
    const { offset, limit, state } = req.query;
    const { batch } = await service.getBatch(req.params.id);
    const jobs = await service.listBatchJobs(req.params.id, { offset, limit, ...(state ? { state } : {}) });
    return { total: state ? batch.counts[state] : batch.total, offset, limit, ...(state ? { state } : {}), jobs };
  });

  app.post<Id>('/v1/batches/:id/cancel', { schema: { params: BatchIdParams } }, async (req) => service.cancelBatch(req.params.id));

  app.post<Id>('/v1/batches/:id/redrive', { schema: { params: BatchIdParams } }, async (req) => service.redriveBatch(req.params.id));

  // A batch paused by its budget: new limits (or none), then its waiting jobs are admitted again.
  app.post<Id & { Body: { maxAudioHours?: number; maxCost?: number; unlimited?: boolean } | undefined }>('/v1/batches/:id/resume', { schema: { params: BatchIdParams, body: ResumeBatchBody } }, async (req) =>
    service.resumeBatch(req.params.id, validateResume(req.body ?? {})),
  );

  app.get<Id & { Querystring: Paging }>('/v1/batches/:id/webhooks', { schema: { params: BatchIdParams, querystring: PagingQuery } }, async (req) => {
    await service.getBatch(req.params.id); // 404 for an unknown batch
    const { offset, limit } = req.query;
    const { total, deliveries } = await service.webhookDeliveries(req.params.id, { offset, limit });
    return { total, offset, limit, deliveries };
  });

  app.get<Id>('/v1/jobs/:id', { schema: { params: JobIdParams } }, async (req) => service.getJob(req.params.id));

  app.post<Id>('/v1/jobs/:id/cancel', { schema: { params: JobIdParams } }, async (req) => service.cancelJob(req.params.id));

  app.post<Id>('/v1/jobs/:id/redrive', { schema: { params: JobIdParams } }, async (req) => service.redriveJob(req.params.id));
}

