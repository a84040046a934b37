/**
 * The one owner of a job's end (BatchService.jobEnded) against real Redis + S3: the first terminal
 * outcome wins, audio seconds count once, a repeated report maps to the same webhook delivery, a
 * failure BullMQ decides on its own (the stalled limit) is found by the reconciler as WORKER_LOST and
 * the batch finishes; the cancel/redrive state rules.
 */
import { UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { batchServiceOver } from '@scribe-fleet/core/adapters/bullmq/open-services';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { redisConnection } from '@scribe-fleet/core/adapters/bullmq/queue';
import { parseJobSpec, type JobSpec } from '@scribe-fleet/core';
import { testStorage, uniqueBucket } from '../helpers/env';
import { testConfig } from '../helpers/fleet';

const config = testConfig({ JOB_ATTEMPTS: '2', WEBHOOK_SECRET: 'job-end-test-secret-0123', WEBHOOK_URL: 'http://127.0.0.1:9/never', RECONCILE_INTERVAL_MS: '1000' });
const storage = testStorage();
const bucket = uniqueBucket('jobend');
const redis = new Redis(config.REDIS_URL);
const fleet = new FleetQueues(config, redis, 'worker');
const services = batchServiceOver({ config, redis, storage, fleet });
const { service } = services;

beforeAll(async () => {
  await storage.ensureBucket(bucket);
  for (const k of ['a.wav', 'b.wav', 'c.wav']) await storage.put(bucket, `in/${k}`, Buffer.from('RIFF....'));
});
afterAll(async () => {
  await services.close();
  await fleet.close();
  redis.disconnect();
});

async function batchOf(prefix: string, account?: string) {
  const r = await service.create({ source: `s3://${bucket}/${prefix}`, out: `s3://${bucket}/out-${prefix.replace('/', '')}/`, ...(account ? { account } : {}) }, { returnIdsUpTo: 10 });
  const specs: JobSpec[] = [];
  for (const id of r.jobIds!) specs.push(parseJobSpec((await fleet.getJob(id))!.data));
  return { ...r, specs };
}

const result = (duration: number) => ({ outputs: { json: 'x.json' }, bucket, duration, sha256: '', requestId: 'r', words: 1, finalResults: 1, provider: 'local', model: 'en-us', mode: 'batch' });

it('the first terminal outcome wins: audio counted once, one webhook delivery per event', async () => {
  const { batchId, jobIds, specs } = await batchOf('in/');
  const id = jobIds![0]!;
  const job = (await fleet.getJob(id))!;
  const first = await service.jobEnded(specs[0]!, id, job.timestamp, { result: result(12.5) });
  const again = await service.jobEnded(specs[0]!, id, job.timestamp, { result: result(12.5) });
  const other = await service.jobEnded(specs[0]!, id, job.timestamp, { error: { code: 'INTERNAL', message: 'late report of a lost attempt' } });
  expect([first.first, again.first, other.first]).toEqual([true, false, false]);
  expect(other.result.state).toBe('completed');
  const { batch } = await service.getBatch(batchId);
  expect(batch.counts.completed).toBe(1);
  expect(batch.counts.failed).toBe(0);
  expect(batch.audioSecondsDone).toBeCloseTo(12.5, 5);
  const deliveries = await service.webhookDeliveries(batchId);
  expect(deliveries.deliveries.filter((d) => d.event === 'job.completed')).toHaveLength(1);
});

it('a job failed by BullMQ itself (stalled limit) is recorded by the reconciler as WORKER_LOST; the batch finishes', async () => {
  await storage.put(bucket, 'st/one.wav', Buffer.from('RIFF....'));
  // A queue of its own (another account): the worker below takes exactly this job.
  const { batchId, jobIds, specs } = await batchOf('st/', 'stalled');
  const id = jobIds![0]!;
  const { queueName } = fleet.bucketOf(specs[0]!);
  // A worker takes the job and BullMQ fails it with its own reason, outside the project's handler.
  const w = new Worker(queueName, null, { connection: redisConnection(config, 'worker'), prefix: config.QUEUE_PREFIX });
  const token = 'tok';
  const job = (await w.getNextJob(token))!;
  expect(job.id).toBe(id);
  await service.jobStarted(specs[0]!, id);
  await job.moveToFailed(new UnrecoverableError('job stalled more than allowable limit'), token, false);
  await w.close();
  expect((await service.getBatch(batchId)).batch.counts.active).toBe(1); // the books do not know yet
  const r = await service.reconcile();
  expect(r.recorded).toBeGreaterThanOrEqual(1);
  const rec = await service.batches.result(batchId, id);
  expect(rec).toMatchObject({ state: 'failed', errorCode: 'WORKER_LOST' });
  // The finalisation was scheduled; run it as the control worker would.
  await service.finalize(batchId);
  const { batch } = await service.getBatch(batchId);
  expect(batch.status).toBe('finished');
  expect(batch.report).toBeDefined();
});

it('cancelling a finished batch, or redriving a batch without failures, is INVALID_STATE', async () => {
  await storage.put(bucket, 'fin/one.wav', Buffer.from('RIFF....'));
  const { batchId, jobIds, specs } = await batchOf('fin/');
  const job = (await fleet.getJob(jobIds![0]!))!;
  await service.jobEnded(specs[0]!, jobIds![0]!, job.timestamp, { result: result(1) });
  await service.finalize(batchId);
  await expect(service.cancelBatch(batchId)).rejects.toMatchObject({ code: 'INVALID_STATE' });
  await expect(service.redriveBatch(batchId)).rejects.toMatchObject({ code: 'INVALID_STATE' });
});
