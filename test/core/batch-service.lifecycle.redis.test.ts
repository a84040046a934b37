/** Batches on the real path: report, skip-if-done, force, adoption across batches, cancel. */
import { Redis } from 'ioredis';
import { batchServiceOver } from '@scribe-fleet/core/adapters/bullmq/open-services';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { createDeps, startWorker, type RunningWorker } from '@scribe-fleet/worker';
import { testStorage, uniqueBucket } from '../helpers/env';
import { readObject, sampleFiles, testConfig, uploadSamples } from '../helpers/fleet';

jest.setTimeout(180_000);

const config = testConfig({ LOCAL_CONCURRENCY: '4', JOB_ATTEMPTS: '1' });
const storage = testStorage();
const bucket = uniqueBucket('batches');
const redis = new Redis(config.REDIS_URL);
const fleet = new FleetQueues(config, redis);
const services = batchServiceOver({ config, redis, storage, fleet });
const { service } = services;
let worker: RunningWorker;
let samples: Awaited<ReturnType<typeof sampleFiles>>;

beforeAll(async () => {
  samples = (await sampleFiles()).slice(0, 3);
  await uploadSamples(storage, bucket, 'in/', samples);
  await storage.put(bucket, 'in/zz-broken.wav', Buffer.from('not audio at all\n'.repeat(40)));
  worker = startWorker(config, createDeps(config));
});

afterAll(async () => {
  await worker.close();
  await services.close();
  await fleet.close();
  redis.disconnect();
});

/** Wait for the batch to finish (report written), without sleeping blindly: poll its record. */
async function finished(id: string, timeoutMs = 120_000) {
  const t0 = Date.now();
  for (;;) {
    await worker.discover();
    const { batch, progress } = await service.getBatch(id);
    if (batch.report) return { batch, progress };
    if (Date.now() - t0 > timeoutMs) throw new Error(`batch ${id} did not finish: ${JSON.stringify(batch.counts)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function report(url: string) {
  const key = url.replace(`s3://${bucket}/`, '');
  return (await readObject(storage, bucket, key)).toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

it('a batch finishes with counts, audio seconds and a report listing every file', async () => {
  const res = await service.create({ source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/` });
  expect(res).toMatchObject({ listed: 4, added: 4, skipped: 0 });
  const { batch, progress } = await finished(res.batchId);
  expect(batch.status).toBe('finished');
  expect(batch.counts).toMatchObject({ completed: 3, failed: 1, queued: 0, active: 0 });
  expect(batch.audioSecondsDone).toBeGreaterThan(20);
  expect(progress.audioSecondsTotalEstimate).toBe(batch.audioSecondsDone);
  expect(batch.report).toBe(`s3://${bucket}/out/_reports/${res.batchId}.jsonl`);
  const lines = await report(batch.report!);
  expect(lines).toHaveLength(4);
  const broken = lines.find((l) => l.key === 'in/zz-broken.wav')!;
  expect(broken).toMatchObject({ status: 'failed', error_code: 'DECODE_FAILED', outputs: null });
  for (const l of lines.filter((x) => x.status === 'completed')) {
    expect(l.duration).toEqual(expect.any(Number));
    expect(l.request_id).toEqual(expect.any(String));
    expect(Object.keys(l.outputs as object).sort()).toEqual(['json', 'srt', 'txt', 'vtt']);
  }
  const summary = JSON.parse((await readObject(storage, bucket, `out/_reports/${res.batchId}.summary.json`)).toString('utf8'));
  expect(summary.counts).toMatchObject({ completed: 3, failed: 1 });
});

it('enqueuing the same prefix again skips finished files and adopts the failed job: nothing new runs', async () => {
  const res = await service.create({ source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/` });
  expect(res).toMatchObject({ added: 0, skipped: 3, duplicates: 1 });
  const { batch } = await finished(res.batchId, 20_000);
  expect(batch.counts).toMatchObject({ skipped: 3, failed: 1, completed: 0 });
  const lines = await report(batch.report!);
  expect(lines.filter((l) => l.status === 'skipped')).toHaveLength(3);
});

it('--force runs finished files again', async () => {
  const res = await service.create({ source: `s3://${bucket}/in/${samples[0]!.name}`, out: `s3://${bucket}/out/`, force: true });
  expect(res).toMatchObject({ added: 1, skipped: 0 });
  const { batch } = await finished(res.batchId);
  expect(batch.counts.completed).toBe(1);
});

it('a job already running for another batch is followed by both batches', async () => {
  const a = await service.create({ source: `s3://${bucket}/in/${samples[1]!.name}`, out: `s3://${bucket}/adopt/`, mode: 'stream' });
  const b = await service.create({ source: `s3://${bucket}/in/${samples[1]!.name}`, out: `s3://${bucket}/adopt/`, mode: 'stream' });
  expect(a.added).toBe(1);
  expect(b).toMatchObject({ added: 0, duplicates: 1 });
  const [fa, fb] = await Promise.all([finished(a.batchId), finished(b.batchId)]);
  expect(fa.batch.counts.completed).toBe(1);
  expect(fb.batch.counts.completed).toBe(1);
});

it('cancelling a batch stops running jobs (JOB_CANCELLED) and removes queued ones', async () => {
  const res = await service.create({ source: `s3://${bucket}/in/`, out: `s3://${bucket}/cancel/`, mode: 'stream' });
  // Wait until something runs, then cancel everything.
  for (let i = 0; i < 100 && (await service.getBatch(res.batchId)).batch.counts.active === 0; i++) {
    await worker.discover();
    await new Promise((r) => setTimeout(r, 100));
  }
  const r = await service.cancelBatch(res.batchId);
  expect(r.cancelled + r.cancelling).toBeGreaterThan(0);
  const { batch } = await finished(res.batchId, 30_000);
  expect(batch.status).toBe('cancelled');
  expect(batch.counts.cancelled + batch.counts.failed).toBe(4); // the broken file may have failed first
  expect(batch.counts.completed).toBe(0);
  for (const id of await service.batches.jobIds(res.batchId, 'cancelled', 0, 10)) {
    const job = await fleet.getJob(id);
    if (job) expect(job.failedReason).toMatch(/^JOB_CANCELLED/);
  }
});
