/**
 * The drip feed (issue 14, bounded backlog): a prefix batch keeps at most about BACKLOG_PER_BUCKET of
 * its jobs in Redis, the rest waits as a durable cursor that the workers' feeder advances as jobs
 * drain, and finished books are spilled to S3 parts of the report. Real Redis (a private
 * redis-server for the memory run, so no other test's keys are counted), the S3 server, the Deepgram
 * emulator answering at once, real worker processes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { jobIdFor, outputKey } from '@scribe-fleet/core';
import { openBatchService, type BatchServices } from '@scribe-fleet/core/adapters/bullmq/open-services';
import { specFor } from '@scribe-fleet/core/app/validate';
import { parseS3Url } from '@scribe-fleet/core/domain/s3-url';
import { startDeepgramEmulator, type DeepgramEmulatorHandle } from '@scribe-fleet/emulators';
import { startRedis, type RedisServer } from '@scribe-fleet/infra-local';
import { childEnv, testStorage, uniqueBucket } from '../helpers/env';
import { testConfig } from '../helpers/fleet';
import { startWorkerProcess, type WorkerProcess } from '../helpers/processes';

jest.setTimeout(600_000);

const KEY = 'dg-drip-key';
const storage = testStorage();
const bucket = uniqueBucket('drip');
const cleanups: Array<() => Promise<unknown>> = [];
let clip: Buffer;
let emu: DeepgramEmulatorHandle;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'scribe-drip-'));
  execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=16000', '-t', '0.2', join(dir, 'clip.wav')]);
  clip = readFileSync(join(dir, 'clip.wav'));
  await storage.ensureBucket(bucket);
  emu = await startDeepgramEmulator({ keys: { [KEY]: 'project-1' }, serviceTimeMs: { prerecorded: 0 } });
  cleanups.push(() => emu.close());
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

async function upload(prefix: string, n: number): Promise<string[]> {
  const keys = Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(6, '0')}.wav`);
  for (let i = 0; i < n; i += 64) await Promise.all(keys.slice(i, i + 64).map((k) => storage.put(bucket, k, clip)));
  return keys;
}

async function until(what: () => string, pred: () => Promise<boolean>, stalledMs: number, progress: () => Promise<number>): Promise<void> {
  // Bounded by progress, not by a fixed time: fails once `progress()` has not moved for `stalledMs`.
  let last = -1;
  let movedAt = Date.now();
  let said = Date.now();
  while (!(await pred())) {
    const p = await progress();
    if (Date.now() - said > 15_000) {
      said = Date.now();
      console.log(`[drip] waiting for ${what()}: ${p}`);
    }
    if (p !== last) {
      last = p;
      movedAt = Date.now();
    } else if (Date.now() - movedAt > stalledMs) throw new Error(`no progress for ${stalledMs} ms: ${what()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function reportLines(producer: BatchServices, batchId: string): Promise<Array<{ job_id: string; key: string; status: string }>> {
  const { batch } = await producer.service.getBatch(batchId);
  const at = parseS3Url(batch.report!);
  const { body } = await storage.get(at.bucket, at.key);
  let text = '';
  for await (const chunk of body) text += chunk.toString();
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { job_id: string; key: string; status: string });
}

const workerEnv = (config: { REDIS_URL: string; QUEUE_NAME: string }, env: Record<string, string>) =>
  childEnv(config, { DEEPGRAM_API_KEY: KEY, DEEPGRAM_URL: emu.url, BUCKET_DISCOVERY_MS: '200', METRICS_PORT: '0', ...env });

it('a page booked but never enqueued (its feeder killed in between) is enqueued by the next pass, once; a stale feeder books nothing; the reconciler leaves it alone', async () => {
  const env = { BACKLOG_PER_BUCKET: '100', ENQUEUE_PAGE_SIZE: '40', FEED_INTERVAL_MS: '200', RECONCILE_INTERVAL_MS: '1000', BOOKS_SPILL_AT: '60' };
  const config = testConfig({ DEEPGRAM_API_KEY: KEY, DEEPGRAM_URL: emu.url, ...env });
  const producer = openBatchService(config, storage, 'producer');
  cleanups.push(() => producer.close());
  const keys = await upload('redo/in/', 250);
  const req = { source: `s3://${bucket}/redo/in/`, out: `s3://${bucket}/redo/out/`, provider: 'deepgram', model: 'nova-3', formats: ['json' as const] };

  // The create call feeds while the bucket's queue holds under 100 jobs: 3 pages of 40.
  const created = await producer.service.create(req);
  expect(created).toMatchObject({ listed: 120, added: 120, feeding: true });
  const batchId = created.batchId;
  const state = (await producer.service.batches.feedState(batchId))!;
  expect(state).toMatchObject({ after: keys[119], redo: [] });

  // A feeder books the next page and dies before enqueuing it.
  const page = keys.slice(120, 160);
  const infos = await Promise.all(page.map((k) => storage.head(bucket, k)));
  const out = parseS3Url(req.out);
  const specs = infos.map((o) => specFor(req, o!, 'redo/in/', out, batchId));
  const entries = specs.map((s) => ({ jobId: jobIdFor(s), key: s.source.key, bytes: s.source.size ?? 0 }));
  expect(await producer.service.batches.feedPage(batchId, keys[119]!, keys[159]!, entries)).toBe(40);
  // A second feeder that read the same cursor books nothing.
  expect(await producer.service.batches.feedPage(batchId, keys[119]!, keys[159]!, entries)).toBeNull();
  const rec = (await producer.service.getBatch(batchId)).batch;
  expect(rec).toMatchObject({ total: 160, feeding: true, listing: true });
  for (const s of specs.slice(0, 3)) expect(await producer.fleet.getJob(jobIdFor(s))).toBeUndefined();
  // The reconciler does not take the booked-but-unqueued jobs for lost.
  await producer.service.reconcile();
  expect((await producer.service.getBatch(batchId)).batch.counts).toMatchObject({ queued: 160, failed: 0 });

  // The next pass enqueues that page (the bucket is full: nothing more is fed).
  const pass = await producer.service.feed();
  expect(pass).toMatchObject({ repaired: 40, pages: 0 });
  for (const s of specs) expect(await producer.fleet.getJob(jobIdFor(s))).toBeDefined();
  expect((await producer.service.batches.feedState(batchId))!.redo).toEqual([]);

  // Workers drain it; their feeder goes on from the cursor; every file ends once.
  const w: WorkerProcess = await startWorkerProcess(workerEnv(config, { SCRIBE_CAPS: 'deepgram:*:nova:batch=20', ...env }));
  cleanups.push(() => w.kill9());
  const done = async () => {
    const b = (await producer.service.getBatch(batchId)).batch;
    return b.counts.completed + b.counts.failed;
  };
  await until(() => 'batch to finish', async () => Boolean((await producer.service.getBatch(batchId)).batch.finishedAt), 30_000, done);
  const finished = (await producer.service.getBatch(batchId)).batch;
  expect(finished).toMatchObject({ total: 250, status: 'finished' });
  expect(finished.counts).toMatchObject({ completed: 250, failed: 0, queued: 0, active: 0 });
  expect(await producer.service.batches.spillParts(batchId)).not.toHaveLength(0);
  const lines = await reportLines(producer, batchId);
  expect(lines).toHaveLength(250);
  expect(new Set(lines.map((l) => l.key))).toEqual(new Set(keys));
  expect(lines.every((l) => l.status === 'completed')).toBe(true);
});

it('skip-if-done and cancel work on a drip-fed batch: skipped files are booked and not queued, a cancel stops the feed and the batch ends with what was fed', async () => {
  const env = { BACKLOG_PER_BUCKET: '100', ENQUEUE_PAGE_SIZE: '40', FEED_INTERVAL_MS: '200', RECONCILE_INTERVAL_MS: '1000' };
  const config = testConfig({ DEEPGRAM_API_KEY: KEY, DEEPGRAM_URL: emu.url, ...env });
  const producer = openBatchService(config, storage, 'producer');
  cleanups.push(() => producer.close());
  const keys = await upload('cancel/in/', 400);
  const req = { source: `s3://${bucket}/cancel/in/`, out: `s3://${bucket}/cancel/out/`, provider: 'deepgram', model: 'nova-3', formats: ['json' as const] };
  // Every 4th file is done already (its JSON output exists).
  const out = parseS3Url(req.out);
  for (const [i, k] of keys.entries()) {
    if (i % 4 !== 0) continue;
    const o = (await storage.head(bucket, k))!;
    await storage.put(bucket, outputKey(specFor(req, o, 'cancel/in/', out, 'b_20240101-000000_00000001'), 'json'), '{}');
  }
  // No worker runs yet, so the queue stays full: pages of 40 (30 queued + 10 skipped) until the
  // bucket holds 100 unfinished jobs.
  const created = await producer.service.create(req);
  expect(created).toMatchObject({ listed: 160, skipped: 40, added: 120, feeding: true });
  const pass = await producer.service.feed();
  expect(pass).toMatchObject({ pages: 0, repaired: 0 });
  await producer.service.cancelBatch(created.batchId);
  expect(await producer.service.batches.feedState(created.batchId)).toMatchObject({ after: null, redo: [] });
  // A worker finalises it (its control queue): the cancel removed every queued job, and the feed does not go on.
  const w = await startWorkerProcess(workerEnv(config, env));
  cleanups.push(() => w.kill9());
  const b = async () => (await producer.service.getBatch(created.batchId)).batch;
  await until(() => 'the cancelled batch to finish', async () => Boolean((await b()).finishedAt), 30_000, async () => (await b()).counts.cancelled);
  const finished = await b();
  expect(finished).toMatchObject({ status: 'cancelled', total: 160 });
  expect(finished.counts).toMatchObject({ skipped: 40, cancelled: 120, queued: 0, active: 0 });
  expect(finished.feeding).toBeUndefined();
  const lines = await reportLines(producer, created.batchId);
  expect(lines).toHaveLength(160);
  expect(lines.filter((l) => l.status === 'skipped')).toHaveLength(40);
});

it('a prefix runs through with a bounded queue and flat Redis memory; a worker killed mid-way (feeder or not) loses and repeats nothing', async () => {
  const objects = Number(process.env.DRIP_OBJECTS ?? 6000);
  const window = 300;
  const pageSize = 100;
  const dir = mkdtempSync(join(tmpdir(), 'scribe-drip-redis-'));
  const server: RedisServer = await startRedis({ dir });
  cleanups.push(() => server.stop());
  const env = {
    BACKLOG_PER_BUCKET: String(window),
    ENQUEUE_PAGE_SIZE: String(pageSize),
    FEED_INTERVAL_MS: '250',
    // DRIP_SPILL_AT=0 turns the spill off: the memory check then fails (the books grow ~350 B a job).
    BOOKS_SPILL_AT: process.env.DRIP_SPILL_AT ?? '500',
    // Finished jobs leave Redis after 5 s (their ends 5 s later): memory is the live window plus that.
    JOB_RETENTION_SECONDS: '5',
    SCRIBE_CAPS: 'deepgram:*:nova:batch=40',
    RECONCILE_INTERVAL_MS: '2000',
    // The killed worker's jobs are back in the queue within 2 × this.
    WORKER_LOCK_MS: '4000',
  };
  const config = testConfig({ REDIS_URL: server.url, DEEPGRAM_API_KEY: KEY, DEEPGRAM_URL: emu.url, ...env });
  const producer = openBatchService(config, storage, 'producer');
  cleanups.push(() => producer.close());
  const keys = await upload('flat/in/', objects);
  const workers: WorkerProcess[] = [];
  for (let i = 0; i < 2; i++) workers.push(await startWorkerProcess(workerEnv(config, env)));
  cleanups.push(async () => {
    for (const w of workers) await w.kill9();
  });

  const created = await producer.service.create({ source: `s3://${bucket}/flat/in/`, out: `s3://${bucket}/flat/out/`, provider: 'deepgram', model: 'nova-3', formats: ['json'] });
  expect(created.feeding).toBe(true);
  const batchId = created.batchId;
  const redis = new Redis(server.url);
  cleanups.push(async () => redis.disconnect());
  const queue = producer.fleet.queue((await producer.fleet.buckets())[0]!);

  // Samples: unfinished jobs in the bucket's queue, Redis memory less BullMQ's event stream (capped
  // at 10 000 events, it grows until full whatever the feed does), jobs done.
  const samples: Array<{ pending: number; memory: number; done: number }> = [];
  const eventsKey = queue.toKey('events');
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const [pending, info, events, b] = await Promise.all([
        queue.getJobCountByTypes('waiting', 'prioritized', 'delayed', 'active'),
        redis.info('memory'),
        redis.memory('USAGE', eventsKey),
        producer.service.getBatch(batchId),
      ]);
      const used = Number(/used_memory:(\d+)/.exec(info)![1]);
      samples.push({ pending, memory: used - Number(events ?? 0), done: b.batch.counts.completed + b.batch.counts.failed });
      await new Promise((r) => setTimeout(r, 200));
    }
  })();

  const done = async () => (await producer.service.getBatch(batchId)).batch.counts.completed;
  // A third of the way in, one worker is killed (whichever runs the feeder, the other takes over).
  await until(() => 'a third done', async () => (await done()) >= objects / 3, 30_000, done);
  await workers[0]!.kill9();
  workers.push(await startWorkerProcess(workerEnv(config, env)));
  let seen = '';
  await until(
    () => `batch to finish (${seen})`,
    async () => {
      const b = (await producer.service.getBatch(batchId)).batch;
      const feed = await producer.service.batches.feedState(batchId);
      seen = `counts ${JSON.stringify(b.counts)}, total ${b.total}, listing ${Boolean(b.listing)}, feed after ${JSON.stringify(feed?.after)}, redo ${feed?.redo.length}, queue ${JSON.stringify(await queue.getJobCounts())}`;
      return Boolean(b.finishedAt);
    },
    30_000,
    done,
  );
  sampling = false;
  await sampler;

  const finished = (await producer.service.getBatch(batchId)).batch;
  expect(finished).toMatchObject({ total: objects, status: 'finished' });
  expect(finished.counts).toMatchObject({ completed: objects, failed: 0, cancelled: 0 });
  const lines = await reportLines(producer, batchId);
  expect(lines).toHaveLength(objects);
  expect(new Set(lines.map((l) => l.key)).size).toBe(objects);
  expect(new Set(lines.map((l) => l.key))).toEqual(new Set(keys));

  // The queue never held much more than the window (the create call's first page, one page over).
  const maxPending = Math.max(...samples.map((s) => s.pending));
  // Memory flat: the median over 35–50 % done against the median over 85–100 %. Without the spill
  // the books alone would grow by ~350 B per job in between (~1 MB at 6 000 files).
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const between = (lo: number, hi: number) => samples.filter((s) => s.done >= lo * objects && s.done < hi * objects && !Number.isNaN(s.memory)).map((s) => s.memory);
  const mid = median(between(0.35, 0.5));
  const late = median(between(0.85, 1.0));
  const perJob = (late - mid) / (0.5 * objects);
  console.log(`[drip] ${objects} objects, window ${window}: max pending ${maxPending}; Redis memory (less events) median ${(mid / 2 ** 20).toFixed(2)} MiB at 35–50 %, ${(late / 2 ** 20).toFixed(2)} MiB at 85–100 % (${perJob.toFixed(1)} B per job between); ${samples.length} samples`);
  expect(maxPending).toBeLessThanOrEqual(window + pageSize);
  expect(late - mid).toBeLessThanOrEqual(512 * 1024);
});
