/**
 * Prometheus metrics after small real batches: the API's fleet view (queues per cap bucket, the
 * backlog KEDA scales on, cap slots, batches) and a real worker process's own metrics (jobs by
 * outcome and code, audio seconds, sessions, slots, pacing lateness), scraped over HTTP; then 429s
 * counted per bucket on an in-process worker whose provider refuses twice.
 */
import { randomBytes } from 'node:crypto';
import { ProviderRateLimitedError, type Provider } from '@scribe-fleet/core';
import { batchServiceOver } from '@scribe-fleet/core/adapters/bullmq/open-services';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { FleetStats } from '@scribe-fleet/core/adapters/redis/fleet-stats';
import { createProviders } from '@scribe-fleet/core/adapters/providers/registry';
import { Redis } from 'ioredis';
import { createDeps, startWorker, type RunningWorker } from '@scribe-fleet/worker';
import { registerDashboard } from '../../apps/producer/src/api/dashboard';
import { registerMetrics } from '../../apps/producer/src/api/metrics';
import { createWorkerMetrics } from '../../apps/worker/src/metrics';
import { startApi, waitBatch, type ApiHarness } from '../api/harness';
import { freePort, testStorage, uniqueBucket } from '../helpers/env';
import { sampleFiles, testConfig, uploadSamples } from '../helpers/fleet';
import { startWorkerProcess, type WorkerProcess } from '../helpers/processes';
import { find, parseProm, value } from './prom';

jest.setTimeout(180_000);

const STREAM = 'local:default:default:stream';

async function scrape(url: string, token?: string) {
  const res = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseProm(await res.text());
}

describe('API and worker process /metrics after a real batch', () => {
  let api: ApiHarness;
  let worker: WorkerProcess | undefined;
  let metricsUrl: string;
  const bucket = uniqueBucket('metrics');

  beforeAll(async () => {
    // A queue prefix of its own: the cap semaphore's keys are per prefix, so other test files' jobs
    // never show up in these slot counts.
    api = await startApi({ QUEUE_PREFIX: `tm-${randomBytes(3).toString('hex')}`, LOCAL_CONCURRENCY: '2', JOB_ATTEMPTS: '1' }, [registerMetrics, registerDashboard]);
    await uploadSamples(api.storage, bucket, 'in/', (await sampleFiles()).slice(0, 2));
    await api.storage.put(bucket, 'in/zz-broken.wav', Buffer.from('not audio at all\n'.repeat(40)));
  });

  afterAll(async () => {
    await worker?.stop();
    await api?.close();
  });

  it('refuses a scrape without a token', async () => {
    expect((await fetch(`${api.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${api.url}/metrics`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
  });

  it('counts the backlog (prioritized jobs included) before a worker runs, and every outcome after', async () => {
    // Priority puts the jobs in BullMQ's `prioritized` ZSET, where a `wait`-list scaler sees nothing.
    const created = await api.call('POST', '/v1/batches', { body: { source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/`, mode: 'stream', priority: 5 } });
    expect(created.status).toBeLessThan(300);
    const batchId: string = created.body.batchId;

    let m = await scrape(`${api.url}/metrics`, api.token);
    const queue = `${api.config.QUEUE_NAME}.local.default.default.stream`;
    expect(value(m, 'scribe_fleet_up')).toBe(1);
    expect(value(m, 'scribe_queue_jobs', { bucket: STREAM, queue, state: 'prioritized' })).toBe(3);
    expect(value(m, 'scribe_queue_jobs', { bucket: STREAM, state: 'waiting' })).toBe(0);
    expect(value(m, 'scribe_queue_backlog', { bucket: STREAM })).toBe(3);
    expect(value(m, 'scribe_queue_backlog_total')).toBe(3);
    // ceil(min(backlog + active, cap + prefetch) / LOCAL_CONCURRENCY) = ceil(3 / 2)
    expect(value(m, 'scribe_queue_desired_workers', { bucket: STREAM })).toBe(2);
    expect(value(m, 'scribe_cap_configured', { bucket: STREAM })).toBe(64);
    expect(value(m, 'scribe_cap_effective', { bucket: STREAM })).toBe(64);
    expect(value(m, 'scribe_cap_slots_in_use', { bucket: STREAM })).toBe(0);
    expect(value(m, 'scribe_queue_active_limit', { bucket: STREAM })).toBe(96);
    expect(value(m, 'scribe_batches', { status: 'running' })).toBe(1);
    expect(value(m, 'scribe_batch_jobs_remaining')).toBe(3);
    expect(find(m, 'scribe_queue_jobs', { queue: `${api.config.QUEUE_NAME}-control`, state: 'waiting' })).toHaveLength(1);
    expect(find(m, 'process_cpu_user_seconds_total')).toHaveLength(1);

    // A real worker process (the compiled main.js), metrics on a port of its own.
    const port = await freePort();
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
    const c = api.config;
    worker = await startWorkerProcess({
      REDIS_URL: c.REDIS_URL,
      S3_ENDPOINT: c.S3_ENDPOINT!,
      S3_ACCESS_KEY_ID: c.S3_ACCESS_KEY_ID!,
      S3_SECRET_ACCESS_KEY: c.S3_SECRET_ACCESS_KEY!,
      S3_REGION: c.S3_REGION,
      QUEUE_PREFIX: c.QUEUE_PREFIX,
      QUEUE_NAME: c.QUEUE_NAME,
      LOCAL_CONCURRENCY: '2',
      JOB_ATTEMPTS: '1',
      BUCKET_DISCOVERY_MS: '200',
      METRICS_PORT: String(port),
      METRICS_HOST: '127.0.0.1',
    });
    expect(worker.output()).toContain(`metrics on http://127.0.0.1:${port}/metrics`);

    const batch = await waitBatch(api, batchId, 150_000);
    expect(batch.counts).toMatchObject({ completed: 2, failed: 1 });
    const failedJobs = await api.call('GET', `/v1/batches/${batchId}/jobs?state=failed`);
    const code: string = failedJobs.body.jobs[0].result.errorCode;
    expect(code).toMatch(/^[A-Z_]+$/);

    const w = await scrape(metricsUrl);
    expect(value(w, 'scribe_jobs_finished_total', { bucket: STREAM, outcome: 'completed', code: '' })).toBe(2);
    expect(value(w, 'scribe_jobs_finished_total', { bucket: STREAM, outcome: 'failed', code })).toBe(1);
    expect(value(w, 'scribe_job_attempts_total', { bucket: STREAM, outcome: 'completed', code: '' })).toBe(2);
    const audio = value(w, 'scribe_audio_seconds_total', { bucket: STREAM });
    expect(audio).toBeGreaterThan(5);
    expect(audio).toBeCloseTo(batch.audioSecondsDone, 3);
    // Paced at real time: the two sessions last about as long as their audio.
    expect(value(w, 'scribe_provider_session_seconds_count', { provider: 'local', mode: 'stream', outcome: 'ok' })).toBe(2);
    expect(value(w, 'scribe_provider_session_seconds_sum', { provider: 'local', mode: 'stream', outcome: 'ok' })).toBeGreaterThan(audio * 0.9);
    expect(value(w, 'scribe_provider_session_seconds_bucket', { provider: 'local', mode: 'stream', outcome: 'ok', le: '+Inf' })).toBe(2);
    // One lateness sample per 100 ms chunk sent.
    expect(value(w, 'scribe_pacing_lateness_seconds_count', { provider: 'local', mode: 'stream' })).toBeGreaterThan(audio * 10 * 0.9);
    expect(value(w, 'scribe_slot_wait_seconds_count', { bucket: STREAM })).toBeGreaterThanOrEqual(2);
    expect(value(w, 'scribe_worker_slots_held', { bucket: STREAM })).toBe(0);
    expect(value(w, 'scribe_worker_cap_effective', { bucket: STREAM })).toBe(64);
    expect(find(w, 'scribe_rate_limited_total')).toHaveLength(0);
    expect(find(w, 'process_resident_memory_bytes')).toHaveLength(1);

    m = await scrape(`${api.url}/metrics`, api.token);
    expect(value(m, 'scribe_queue_jobs', { bucket: STREAM, state: 'completed' })).toBe(2);
    expect(value(m, 'scribe_queue_jobs', { bucket: STREAM, state: 'failed' })).toBe(1);
    expect(value(m, 'scribe_queue_backlog', { bucket: STREAM })).toBe(0);
    expect(value(m, 'scribe_queue_desired_workers', { bucket: STREAM })).toBe(0);
    expect(value(m, 'scribe_cap_slots_in_use', { bucket: STREAM })).toBe(0);
    expect(value(m, 'scribe_batches', { status: 'finished' })).toBe(1);
    expect(value(m, 'scribe_batches', { status: 'running' })).toBe(0);
    expect(value(m, 'scribe_batch_jobs_remaining')).toBe(0);
    expect(value(m, 'scribe_queue_jobs', { queue: `${api.config.QUEUE_NAME}-control`, state: 'completed' })).toBeGreaterThanOrEqual(1);

    // The fleet history the workers keep in Redis, as GET /v1/fleet shows it.
    const fleet = await api.call('GET', '/v1/fleet');
    expect(fleet.status).toBe(200);
    expect(fleet.body.throughput.lastHour).toBe(3);
    expect(fleet.body.failures).toEqual([{ code, count: 1 }]);
    expect(fleet.body.audio.last24h * 3600).toBeCloseTo(audio, 3);
    expect(fleet.body.batches[0]).toMatchObject({ id: batchId, status: 'finished', counts: batch.counts, done: 3, total: 3 });
    expect(fleet.body.buckets).toEqual([expect.objectContaining({ bucket: STREAM, backlog: 0, slots: { inUse: 0, effective: 64, configured: 64 } })]);
  });
});

it('counts provider 429s per cap bucket: retried inside the attempt and ending it', async () => {
  const config = testConfig({ QUEUE_PREFIX: `tr-${randomBytes(3).toString('hex')}`, JOB_ATTEMPTS: '1' });
  const storage = testStorage();
  const redis = new Redis(config.REDIS_URL);
  const fleet = new FleetQueues(config, redis);
  const services = batchServiceOver({ config, redis, storage, fleet });
  const { service } = services;
  const bucket = uniqueBucket('ratelimit');
  await uploadSamples(storage, bucket, 'in/', (await sampleFiles()).slice(0, 1));

  // The real local recogniser behind two "429 Too Many Requests".
  const real = createProviders(config).local!;
  let calls = 0;
  const flaky: Provider = {
    name: 'local',
    transcribe: async (req, ctx) => {
      if (++calls <= 2) throw new ProviderRateLimitedError('too many requests (test)', { retryAfterMs: 50 });
      return real.transcribe(req, ctx);
    },
  };
  const metrics = createWorkerMetrics();
  // One 429 is retried inside the attempt (reported to the limiter); the next ends the attempt,
  // which re-schedules the job (outcome rate_limited); the third call succeeds.
  let worker: RunningWorker | undefined;
  try {
    worker = startWorker(config, createDeps(config, { providers: { local: flaky }, maxRateLimitRetries: 1 }, metrics));
    const { batchId, jobIds } = await service.create({ source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/` }, { returnIdsUpTo: 10 });
    for (const t0 = Date.now(); ; ) {
      await worker.discover();
      const { batch } = await service.getBatch(batchId);
      if (batch.counts.completed + batch.counts.failed === 1) {
        expect(batch.counts.completed).toBe(1);
        break;
      }
      if (Date.now() - t0 > 60_000) throw new Error(`batch did not finish: ${JSON.stringify(batch.counts)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // The books record the end first; the attempt's metrics follow before BullMQ marks the job
    // completed. Wait for that state, so the metrics read below are the attempt's last.
    for (let t0 = Date.now(), state = ''; state !== 'completed'; ) {
      const job = await fleet.getJob(jobIds![0]!);
      state = String(await job?.getState());
      // Generous: on a loaded machine (the chaos suite runs beside this file in CI) the handler's last
      // steps after the books (finalise enqueue, fleet history) have once taken longer than 30 s.
      if (Date.now() - t0 > 100_000) throw new Error(`the job was never marked completed: ${state}, attempts ${job?.attemptsMade}, ${job?.failedReason ?? ''}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const b = 'local:default:default:batch';
    const m = parseProm(await metrics.registry.metrics());
    expect(calls).toBe(3);
    expect(value(m, 'scribe_rate_limited_total', { bucket: b })).toBe(2);
    expect(value(m, 'scribe_provider_session_seconds_count', { provider: 'local', mode: 'batch', outcome: 'rate_limited' })).toBe(2);
    expect(value(m, 'scribe_provider_session_seconds_count', { provider: 'local', mode: 'batch', outcome: 'ok' })).toBe(1);
    expect(value(m, 'scribe_job_attempts_total', { bucket: b, outcome: 'rate_limited', code: 'PROVIDER_RATE_LIMITED' })).toBe(1);
    expect(value(m, 'scribe_jobs_finished_total', { bucket: b, outcome: 'completed', code: '' })).toBe(1);
    expect(find(m, 'scribe_jobs_finished_total', { outcome: 'failed' })).toHaveLength(0);
    expect(value(m, 'scribe_cap_decreases_total', { bucket: b })).toBeGreaterThanOrEqual(1);
    expect(value(m, 'scribe_worker_slots_held', { bucket: b })).toBe(0);

    // The fleet history saw the same: one completed, one re-scheduled attempt.
    const history = await new FleetStats(redis, config).read({ minutes: 5, hours: 1 });
    const sum = (k: 'completed' | 'rateLimited' | 'failed') => history.minutes.reduce((n, x) => n + x[k], 0);
    expect([sum('completed'), sum('rateLimited'), sum('failed')]).toEqual([1, 1, 0]);
    // Bounded: minute and hour hashes (one each, or two across a boundary), each with a TTL.
    const keys = await redis.keys(`${config.QUEUE_PREFIX}:{${config.QUEUE_NAME}:fleet}:*`);
    expect([...new Set(keys.map((k) => k.replace(/\d+$/, 'N')))].sort()).toEqual([`${config.QUEUE_PREFIX}:{${config.QUEUE_NAME}:fleet}:h:N`, `${config.QUEUE_PREFIX}:{${config.QUEUE_NAME}:fleet}:m:N`]);
    for (const k of keys) {
      const ttl = await redis.ttl(k);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(k.includes(':m:') ? 3 * 3600 : 8 * 24 * 3600);
    }
  } finally {
    await worker?.close();
    await services.close();
    await fleet.close();
    storage.destroy();
    redis.disconnect();
  }
});
