/**
 * GET /metrics of the API process (Prometheus text format, prom-client): the fleet-wide state read
 * from Redis at scrape time. Workers export what happens inside them (jobs finished, audio seconds,
 * sessions, 429s, pacing) on their own METRICS_PORT; this is the view no single worker has:
 *
 *   scribe_queue_jobs{bucket,queue,state}     BullMQ getJobCounts of every cap-bucket queue (and the
 *                                             control / webhook queues, bucket="")
 *   scribe_queue_backlog{bucket,queue}        waiting + prioritized + delayed: what KEDA scales on
 *   scribe_queue_backlog_total                the same, summed over buckets
 *   scribe_queue_desired_workers{bucket}      cap-aware: worker processes the bucket can keep busy
 *   scribe_cap_slots_in_use{bucket}           leases held in the cap semaphore, fleet-wide
 *   scribe_cap_effective{bucket}              adaptive (AIMD) cap after 429s
 *   scribe_cap_configured{bucket}             configured cap
 *   scribe_queue_active_limit{bucket}         the queue's global concurrency (cap + prefetch)
 *   scribe_batches{status}                    batches by status (among the most recent RECENT_BATCHES)
 *   scribe_batch_jobs_remaining               jobs not yet finished in running batches
 *   scribe_fleet_up                           1 if the last scrape could read Redis
 *
 * The route needs a token like the API (`Authorization: Bearer …` in the Prometheus scrape config).
 */
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { doneCount } from '@scribe-fleet/core';
import { apiAuth } from './auth';
import { closeFleetReader, fleetReader, QUEUE_STATES, type BucketView, type FleetContext, type QueueView } from './dashboard/fleet-view';
import { describeRoutes } from './openapi';
import type { ApiContext, ApiExtension } from './server';

/** Batches considered for scribe_batches / scribe_batch_jobs_remaining (newest first). */
export const RECENT_BATCHES = 200;

/** What one scrape reads (a source, so a test can build the registry without Redis). */
export interface FleetMetricsSource {
  buckets(): Promise<BucketView[]>;
  queues(): Promise<QueueView[]>;
  batches(): Promise<Array<{ status: string; total: number; done: number }>>;
}

/** The API's metric registry over a source; every gauge is filled at scrape time. */
export function createApiMetrics(source: FleetMetricsSource, opts: { defaultMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry });
  const registers = [registry];

  // One read per scrape, shared by the gauges (prom-client collects them concurrently).
  let pending: Promise<{ buckets: BucketView[]; queues: QueueView[]; batches: Array<{ status: string; total: number; done: number }> } | null> | undefined;
  const read = () => {
    pending ??= Promise.all([source.buckets(), source.queues(), source.batches()])
      .then(([buckets, queues, batches]) => ({ buckets, queues, batches }))
      .catch(() => null)
      .finally(() => setImmediate(() => (pending = undefined)));
    return pending;
  };

  new Gauge({
    name: 'scribe_fleet_up',
    help: '1 if this scrape could read the fleet state from Redis, else 0 (the other fleet gauges are then absent).',
    registers,
    async collect() {
      this.set((await read()) ? 1 : 0);
    },
  });
  new Gauge({
    name: 'scribe_queue_jobs',
    help: 'Jobs per BullMQ queue and state (cap-bucket queues; bucket="" for the control and webhook queues).',
    labelNames: ['bucket', 'queue', 'state'] as const,
    registers,
    async collect() {
      this.reset();
      const s = await read();
      if (!s) return;
      for (const b of s.buckets) for (const st of QUEUE_STATES) this.set({ bucket: b.bucket, queue: b.queue, state: st }, b.counts[st]);
      for (const q of s.queues) for (const st of QUEUE_STATES) this.set({ bucket: '', queue: q.name, state: st }, q.counts[st]);
    },
  });
  new Gauge({
    name: 'scribe_queue_backlog',
    help: 'Jobs waiting to run per cap bucket: waiting + prioritized + delayed (the KEDA scaling input; the raw `wait` list misses prioritized and delayed jobs).',
    labelNames: ['bucket', 'queue'] as const,
    registers,
    async collect() {
      this.reset();
      for (const b of (await read())?.buckets ?? []) this.set({ bucket: b.bucket, queue: b.queue }, b.backlog);
    },
  });
  new Gauge({
    name: 'scribe_queue_backlog_total',
    help: 'scribe_queue_backlog summed over every cap bucket.',
    registers,
    async collect() {
      const s = await read();
      this.reset();
      if (s) this.set(s.buckets.reduce((n, b) => n + b.backlog, 0));
    },
  });
  new Gauge({
    name: 'scribe_queue_desired_workers',
    help: 'Cap-aware worker demand per bucket: ceil(min(backlog + active, active limit) / jobs per worker). Past the cap, more workers only wait for slots.',
    labelNames: ['bucket'] as const,
    registers,
    async collect() {
      this.reset();
      for (const b of (await read())?.buckets ?? []) this.set({ bucket: b.bucket }, b.desiredWorkers);
    },
  });
  new Gauge({
    name: 'scribe_queue_active_limit',
    help: "Jobs of a bucket allowed active fleet-wide (the queue's global concurrency: cap plus prefetch).",
    labelNames: ['bucket'] as const,
    registers,
    async collect() {
      this.reset();
      for (const b of (await read())?.buckets ?? []) this.set({ bucket: b.bucket }, b.activeLimit);
    },
  });
  const slotGauge = (name: string, help: string, pick: (s: NonNullable<BucketView['slots']>) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['bucket'] as const,
      registers,
      async collect() {
        this.reset();
        for (const b of (await read())?.buckets ?? []) if (b.slots) this.set({ bucket: b.bucket }, pick(b.slots));
      },
    });
  slotGauge('scribe_cap_slots_in_use', 'Slots of the cap semaphore held fleet-wide (live leases in Redis), per bucket.', (s) => s.inUse);
  slotGauge('scribe_cap_effective', 'Effective cap per bucket: the configured cap, lowered after provider 429s and raised back over time (AIMD).', (s) => s.effective);
  slotGauge('scribe_cap_configured', 'Configured cap per bucket (SCRIBE_CAPS overrides, else the provider default).', (s) => s.configured);
  new Gauge({
    name: 'scribe_batches',
    help: `Batches by status (running, finished, cancelled), among the ${RECENT_BATCHES} most recent.`,
    labelNames: ['status'] as const,
    registers,
    async collect() {
      this.reset();
      const s = await read();
      if (!s) return;
      for (const status of ['running', 'finished', 'cancelled']) this.set({ status }, 0);
      for (const b of s.batches) this.inc({ status: b.status });
    },
  });
  new Gauge({
    name: 'scribe_batch_jobs_remaining',
    help: `Jobs not yet finished in running batches (among the ${RECENT_BATCHES} most recent).`,
    registers,
    async collect() {
      const s = await read();
      this.reset();
      if (s) this.set(s.batches.filter((b) => b.status === 'running').reduce((n, b) => n + Math.max(0, b.total - b.done), 0));
    },
  });
  return registry;
}

/** The source of a live API: the shared FleetReader of its context. */
export function fleetMetricsSource(ctx: FleetContext): FleetMetricsSource {
  const { reader } = fleetReader(ctx);
  return {
    buckets: () => reader.bucketsCached(),
    queues: () => reader.queues(),
    batches: async () => {
      const ids = await ctx.service.batches.recent(RECENT_BATCHES);
      const recs = await Promise.all(ids.map((id) => ctx.service.batches.get(id)));
      return recs.filter((r) => r !== null).map((r) => ({ status: r.status, total: r.total, done: doneCount(r.counts) }));
    },
  };
}

export const registerMetrics: ApiExtension = async (app: FastifyInstance, ctx: ApiContext) => {
  const registry = createApiMetrics(fleetMetricsSource(ctx), { defaultMetrics: true });
  app.addHook('onClose', async () => closeFleetReader(ctx));
  describeRoutes([
    {
      method: 'get',
      path: '/metrics',
      operationId: 'metrics',
      summary: 'Prometheus metrics of the fleet (queues per cap bucket, backlog, cap slots, batches)',
      description: 'Prometheus text exposition format (not JSON). Worker processes export their own metrics on METRICS_PORT.',
      auth: true,
      responses: {
        '200': { description: 'Prometheus text format.' },
        '401': {
          description: 'Missing or invalid token (UNAUTHORIZED).',
          schema: { type: 'object', required: ['error'], properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } } } },
        },
      },
    },
  ]);
  app.get('/metrics', { preHandler: apiAuth(ctx).hook }, async (_req, reply) => {
    const text = await registry.metrics();
    return reply.type(registry.contentType).send(text);
  });
};
