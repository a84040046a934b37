/**
 * Cancel and redrive through the HTTP API with a real in-process worker: a queued job is removed
 * (cancelled), a running one is aborted on its worker (JOB_CANCELLED), a batch is cancelled whole;
 * failed jobs (their source vanished) are redriven one by one and per batch once the file is back.
 */
import { readFile } from 'node:fs/promises';
import { createDeps, startWorker, type RunningWorker } from '@scribe-fleet/worker';
import { uniqueBucket } from '../helpers/env';
import { readObject, sampleFiles, uploadSamples } from '../helpers/fleet';
import { startApi, waitBatch, type ApiHarness } from './harness';

jest.setTimeout(90_000);

const bucket = uniqueBucket('api-cancel');
let api: ApiHarness;
let worker: RunningWorker | undefined;
let samples: Awaited<ReturnType<typeof sampleFiles>>;
const failing: Record<string, { batchId: string }> = {};

beforeAll(async () => {
  samples = await sampleFiles([
    { name: 'long-a.wav', voice: 'kal16', format: 'wav', text: 'the children played in the park until the sun went down behind the hills' },
    { name: 'long-b.wav', voice: 'rms', format: 'wav', text: 'the weather today is cold and windy with a chance of rain in the evening' },
    { name: 'fix-c.wav', voice: 'kal16', format: 'wav', text: 'the quick brown fox jumps over the lazy dog' },
    { name: 'fix-d.wav', voice: 'kal16', format: 'wav', text: 'please call me back when you have a moment' },
  ]);
  // One local job at a time per worker: in stream mode (real time) the second job stays queued.
  api = await startApi({ LOCAL_CONCURRENCY: '1', JOB_ATTEMPTS: '1' });
  await uploadSamples(api.storage, bucket, 'stream/', samples.slice(0, 2));
  await uploadSamples(api.storage, bucket, 'stream2/', samples.slice(0, 2));
  await uploadSamples(api.storage, bucket, 'one/', samples.slice(2, 3));
  await uploadSamples(api.storage, bucket, 'two/', samples.slice(2, 4));

  // Enqueued before any worker runs; then the sources disappear, so these jobs fail (SOURCE_NOT_FOUND).
  for (const prefix of ['one/', 'two/']) {
    const r = await api.call('POST', '/v1/batches', { body: { source: `s3://${bucket}/${prefix}`, out: `s3://${bucket}/out-${prefix}` } });
    expect(r.status).toBe(201);
    failing[prefix] = { batchId: r.body.batchId };
  }
  await api.storage.delete(bucket, `one/${samples[2]!.name}`);
  for (const s of samples.slice(2, 4)) await api.storage.delete(bucket, `two/${s.name}`);
  worker = startWorker(api.config, createDeps(api.config));
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
});

const tick = () => worker!.discover();

/** Put the same bytes back: same content, same ETag, so the pinned job can read it again. */
async function restore(key: string, name: string) {
  await api.storage.put(bucket, key, await readFile(samples.find((s) => s.name === name)!.path));
}

describe('redrive', () => {
  it('a failed job is redriven after its file is fixed, and completes; the batch writes a new report', async () => {
    const { batchId } = failing['one/']!;
    const failed = await waitBatch(api, batchId, 60_000, tick);
    expect(failed.counts).toMatchObject({ failed: 1, completed: 0 });
    const [entry] = (await api.call('GET', `/v1/batches/${batchId}/jobs?state=failed`)).body.jobs;
    expect(entry.result).toMatchObject({ state: 'failed', errorCode: 'SOURCE_NOT_FOUND' });
    const job = await api.call('GET', `/v1/jobs/${entry.jobId}`);
    expect(job.body).toMatchObject({ state: 'failed', error: { code: 'SOURCE_NOT_FOUND', message: expect.any(String) } });

    await restore(`one/${samples[2]!.name}`, samples[2]!.name);
    const r = await api.call('POST', `/v1/jobs/${entry.jobId}/redrive`);
    expect(r).toMatchObject({ status: 200, body: { id: entry.jobId, state: 'waiting' } });
    const reopened = (await api.call('GET', `/v1/batches/${batchId}`)).body;
    expect(reopened.status).toBe('running');
    expect(reopened.report).toBeUndefined();

    const done = await waitBatch(api, batchId, 60_000, tick);
    expect(done.counts).toMatchObject({ completed: 1, failed: 0 });
    expect((await api.call('GET', `/v1/jobs/${entry.jobId}`)).body).toMatchObject({ state: 'completed', attemptsMade: expect.any(Number) });
    const report = (await readObject(api.storage, bucket, done.report.replace(`s3://${bucket}/`, ''))).toString('utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(report).toEqual([expect.objectContaining({ job_id: entry.jobId, status: 'completed', error_code: null })]);
  });

  it('POST /v1/batches/:id/redrive puts every failed job back', async () => {
    const { batchId } = failing['two/']!;
    const failed = await waitBatch(api, batchId, 60_000, tick);
    expect(failed.counts).toMatchObject({ failed: 2 });
    for (const s of samples.slice(2, 4)) await restore(`two/${s.name}`, s.name);
    const r = await api.call('POST', `/v1/batches/${batchId}/redrive`);
    expect(r).toMatchObject({ status: 200, body: { redriven: 2 } });
    const done = await waitBatch(api, batchId, 60_000, tick);
    expect(done).toMatchObject({ status: 'finished', counts: { completed: 2, failed: 0 } });
  });
});

/** Wait until one job of the batch is active; returns the batch's jobs by state. */
async function untilOneRuns(batchId: string) {
  for (let i = 0; i < 300; i++) {
    await tick();
    const active = (await api.call('GET', `/v1/batches/${batchId}/jobs?state=active`)).body.jobs;
    if (active.length) {
      const queued = (await api.call('GET', `/v1/batches/${batchId}/jobs?state=queued`)).body.jobs;
      return { active: active as Array<{ jobId: string }>, queued: queued as Array<{ jobId: string }> };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no job of ${batchId} started`);
}

describe('cancel', () => {
  it('a queued job is removed (cancelled); a running one is aborted on its worker (JOB_CANCELLED)', async () => {
    const r = await api.call('POST', '/v1/batches', { body: { source: `s3://${bucket}/stream/`, out: `s3://${bucket}/out-stream/`, mode: 'stream' } });
    expect(r.status).toBe(201);
    const { batchId } = r.body;
    const { active, queued } = await untilOneRuns(batchId);
    expect(queued).toHaveLength(1);

    const q = await api.call('POST', `/v1/jobs/${queued[0]!.jobId}/cancel`);
    expect(q).toMatchObject({ status: 200, body: { id: queued[0]!.jobId, state: 'cancelled' } });
    expect((await api.call('GET', `/v1/jobs/${queued[0]!.jobId}`)).status).toBe(404); // removed from the queue

    const a = await api.call('POST', `/v1/jobs/${active[0]!.jobId}/cancel`);
    expect(a).toMatchObject({ status: 200, body: { id: active[0]!.jobId, state: 'cancelling' } });

    const b = await waitBatch(api, batchId, 30_000, tick);
    expect(b).toMatchObject({ status: 'finished', counts: { cancelled: 2, completed: 0, failed: 0 } });
    const running = await api.call('GET', `/v1/jobs/${active[0]!.jobId}`);
    expect(running.body).toMatchObject({ state: 'failed', error: { code: 'JOB_CANCELLED' } });
    const entries = (await api.call('GET', `/v1/batches/${batchId}/jobs?state=cancelled`)).body.jobs;
    expect(entries.map((e: { result: { errorCode: string } }) => e.result.errorCode)).toEqual(['JOB_CANCELLED', 'JOB_CANCELLED']);
    // Already over: cancelling again is a conflict, not a silent success.
    expect(await api.call('POST', `/v1/jobs/${active[0]!.jobId}/cancel`)).toMatchObject({ status: 409, body: { error: { code: 'INVALID_STATE' } } });
  });

  it('POST /v1/batches/:id/cancel cancels queued and running jobs; the batch ends cancelled with a report', async () => {
    const r = await api.call('POST', '/v1/batches', { body: { source: `s3://${bucket}/stream2/`, out: `s3://${bucket}/out-stream2/`, mode: 'stream' } });
    const { batchId } = r.body;
    await untilOneRuns(batchId);
    const c = await api.call('POST', `/v1/batches/${batchId}/cancel`);
    expect(c).toMatchObject({ status: 200, body: { cancelled: 1, cancelling: 1 } });
    const b = await waitBatch(api, batchId, 30_000, tick);
    expect(b).toMatchObject({ status: 'cancelled', counts: { cancelled: 2, completed: 0 } });
    const report = (await readObject(api.storage, bucket, b.report.replace(`s3://${bucket}/`, ''))).toString('utf8').trim().split('\n');
    expect(report.map((l) => JSON.parse(l).status)).toEqual(['cancelled', 'cancelled']);
  });
});
