import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ScribeError, type JobOutcome, type JobSpec, type Provider, type SessionEvent } from '@scribe-fleet/core';
import type { LimiterEvent } from '@scribe-fleet/core/adapters/redis/redis-limiter';
import type { ProcessorDeps } from '@scribe-fleet/core/app/process-attempt';

/**
 * Prometheus metrics of one worker process (prom-client, a registry of its own, so several workers in
 * one process — tests — never collide). Everything here is this process's view; the fleet-wide truth
 * (queue depths, slots in use per bucket in Redis) is exported by the API process.
 *
 * Labels stay bounded: `bucket` is a cap bucket key (provider:account:class:mode), `code` a stable
 * error code, `provider`/`mode` come from the catalogue.
 */
export interface WorkerMetrics {
  readonly registry: Registry;
  /** Every attempt's end (from worker.ts through ProcessorDeps.onJobEnd). */
  jobEnded(o: JobOutcome): void;
  /** Provider session events (pacing lateness, reconnects), through ProcessorDeps.onSessionEvent. */
  sessionEvent(spec: JobSpec, e: SessionEvent): void;
  /** RedisLimiter events (RedisLimiterOptions.onEvent). */
  limiterEvent(e: LimiterEvent): void;
  /** One provider 429 (the limiter's reportRateLimited, or an attempt ended by one). */
  rateLimited(bucket: string): void;
  /** One provider session's wall time. */
  session(provider: string, mode: string, outcome: 'ok' | 'rate_limited' | 'error', seconds: number): void;
}

export function createWorkerMetrics(opts: { defaultMetrics?: boolean } = {}): WorkerMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const jobsFinished = new Counter({
    name: 'scribe_jobs_finished_total',
    help: 'Jobs that ended for good on this worker, by cap bucket, outcome (completed, failed, cancelled) and error code ("" when completed).',
    labelNames: ['bucket', 'outcome', 'code'] as const,
    registers,
  });
  const attempts = new Counter({
    name: 'scribe_job_attempts_total',
    help: 'Attempts that ended on this worker, by cap bucket, outcome (completed, failed, cancelled, retry, rate_limited) and error code.',
    labelNames: ['bucket', 'outcome', 'code'] as const,
    registers,
  });
  const audioSeconds = new Counter({
    name: 'scribe_audio_seconds_total',
    help: 'Seconds of audio transcribed by completed jobs, by cap bucket.',
    labelNames: ['bucket'] as const,
    registers,
  });
  const sessionSeconds = new Histogram({
    name: 'scribe_provider_session_seconds',
    help: 'Wall time of one provider session (a batch request or a paced stream), by provider, mode and outcome (ok, rate_limited, error).',
    labelNames: ['provider', 'mode', 'outcome'] as const,
    // From sub-second batch requests to hour-long real-time streams.
    buckets: [0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200],
    registers,
  });
  const rateLimited = new Counter({
    name: 'scribe_rate_limited_total',
    help: 'Provider "too many requests" answers (HTTP 429 and equivalents), by cap bucket.',
    labelNames: ['bucket'] as const,
    registers,
  });
  const slotsHeld = new Gauge({
    name: 'scribe_worker_slots_held',
    help: 'Cap-bucket slots (leases) this worker process holds now, by bucket. Sum over workers = slots in use fleet-wide.',
    labelNames: ['bucket'] as const,
    registers,
  });
  const effectiveCap = new Gauge({
    name: 'scribe_worker_cap_effective',
    help: 'The effective (adaptive, AIMD) cap of a bucket as this worker last saw it.',
    labelNames: ['bucket'] as const,
    registers,
  });
  const slotWait = new Histogram({
    name: 'scribe_slot_wait_seconds',
    help: 'Time a job waited for a slot of its cap bucket, by bucket.',
    labelNames: ['bucket'] as const,
    buckets: [0.005, 0.025, 0.1, 0.5, 1, 5, 15, 60, 300, 1800],
    registers,
  });
  const capDecreases = new Counter({
    name: 'scribe_cap_decreases_total',
    help: 'Times a 429 made the limiter lower a bucket\'s effective cap (seen by this worker).',
    labelNames: ['bucket'] as const,
    registers,
  });
  const leasesLost = new Counter({
    name: 'scribe_leases_lost_total',
    help: 'Leases found expired while held (Redis unreachable longer than LEASE_TTL_MS); the session was aborted.',
    labelNames: ['bucket'] as const,
    registers,
  });
  const lateness = new Histogram({
    name: 'scribe_pacing_lateness_seconds',
    help: 'How late each paced stream chunk was sent after its deadline, by provider and mode.',
    labelNames: ['provider', 'mode'] as const,
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1],
    registers,
  });
  const reconnects = new Counter({
    name: 'scribe_provider_reconnects_total',
    help: 'Stream reconnects inside a session, by provider and mode.',
    labelNames: ['provider', 'mode'] as const,
    registers,
  });

  return {
    registry,
    jobEnded(o) {
      const code = o.outcome === 'completed' ? '' : (o.code ?? 'INTERNAL');
      attempts.inc({ bucket: o.bucket, outcome: o.outcome, code });
      if (o.outcome === 'completed' || o.outcome === 'failed' || o.outcome === 'cancelled') jobsFinished.inc({ bucket: o.bucket, outcome: o.outcome, code });
      if (o.audioSeconds) audioSeconds.inc({ bucket: o.bucket }, o.audioSeconds);
      // A 429 the processor did not retry itself ends the attempt (re-scheduled): count it here,
      // the retried ones are counted when reported to the limiter (see instrumentDeps).
      if (o.outcome === 'rate_limited') rateLimited.inc({ bucket: o.bucket });
    },
    sessionEvent(spec, e) {
      if (e.type === 'session:chunk-lateness') lateness.observe({ provider: spec.provider, mode: spec.mode }, Math.max(0, e.ms) / 1000);
      else if (e.type === 'session:reconnect') reconnects.inc({ provider: spec.provider, mode: spec.mode });
    },
    limiterEvent(e) {
      switch (e.type) {
        case 'lease:acquired':
          slotsHeld.inc({ bucket: e.bucket });
          effectiveCap.set({ bucket: e.bucket }, e.effectiveCap);
          slotWait.observe({ bucket: e.bucket }, e.waitedMs / 1000);
          break;
        case 'lease:released':
          slotsHeld.dec({ bucket: e.bucket });
          if (e.effectiveCap >= 0) effectiveCap.set({ bucket: e.bucket }, e.effectiveCap);
          break;
        case 'cap:decreased':
          capDecreases.inc({ bucket: e.bucket });
          effectiveCap.set({ bucket: e.bucket }, e.effectiveCap);
          break;
        case 'lease:lost':
          leasesLost.inc({ bucket: e.bucket });
          break;
      }
    },
    rateLimited(bucket) {
      rateLimited.inc({ bucket });
    },
    session(provider, mode, outcome, seconds) {
      sessionSeconds.observe({ provider, mode, outcome }, seconds);
    },
  };
}

/** A provider whose sessions are timed into `scribe_provider_session_seconds` (everything else is the provider's own). */
export function instrumentProvider(provider: Provider, metrics: WorkerMetrics): Provider {
  const timed: Provider['transcribe'] = async (req, ctx) => {
    const started = performance.now();
    let outcome: 'ok' | 'rate_limited' | 'error' = 'error';
    try {
      const r = await provider.transcribe(req, ctx);
      outcome = 'ok';
      return r;
    } catch (e) {
      if (e instanceof ScribeError && e.kind === 'rate_limit') outcome = 'rate_limited';
      throw e;
    } finally {
      metrics.session(provider.name, req.mode, outcome, (performance.now() - started) / 1000);
    }
  };
  // A proxy, so provider methods keep their own `this` (and any class-private state).
  return new Proxy(provider, {
    get(target, prop) {
      if (prop === 'transcribe') return timed;
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/**
 * Wire metrics into the processor's dependencies: time provider sessions, count 429s reported to the
 * limiter, observe session events and attempt ends (keeping any hooks already set). Limiter events
 * are wired where the limiter is built (deps.ts redisLimiter).
 */
export function instrumentDeps(deps: ProcessorDeps, metrics: WorkerMetrics): ProcessorDeps {
  const providers: ProcessorDeps['providers'] = {};
  for (const [name, p] of Object.entries(deps.providers)) if (p) providers[name] = instrumentProvider(p, metrics);
  const limiter = deps.limiter;
  const onSessionEvent = deps.onSessionEvent;
  const onJobEnd = deps.onJobEnd;
  return {
    ...deps,
    providers,
    limiter: {
      acquire: (bucket, signal) => limiter.acquire(bucket, signal),
      reportRateLimited: (bucket, retryAfterMs) => {
        metrics.rateLimited(bucket);
        limiter.reportRateLimited?.(bucket, retryAfterMs);
      },
      ...(limiter.close ? { close: () => limiter.close!() } : {}),
    },
    onSessionEvent: (spec, e) => {
      metrics.sessionEvent(spec, e);
      onSessionEvent?.(spec, e);
    },
    onJobEnd: (o) => {
      metrics.jobEnded(o);
      onJobEnd?.(o);
    },
  };
}

/**
 * Serve `GET /metrics` (Prometheus text format) on a small HTTP server. A port that is taken (several
 * workers on one host with the same METRICS_PORT) is reported and skipped: metrics never stop a worker.
 */
export async function serveMetrics(metrics: WorkerMetrics, port: number, host = '0.0.0.0'): Promise<Server | undefined> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || (path !== '/metrics' && path !== '/healthz')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (e: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e.message}\n`),
    );
  });
  return new Promise((resolve) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      console.error(`[worker] metrics endpoint not started on ${host}:${port}: ${e.code ?? e.message} (set METRICS_PORT per worker, or 0 for none)`);
      resolve(undefined);
    });
    server.listen(port, host, () => {
      server.removeAllListeners('error');
      server.on('error', (e) => console.error(`[worker] metrics endpoint: ${e.message}`));
      resolve(server);
    });
  });
}
