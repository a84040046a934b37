/**
 * Batches through the HTTP API with a real in-process worker (local recogniser, short synthesised
 * samples): create from a prefix (201) and a manifest, the 202 background-listing path, progress,
 * paged jobs, one job, the report in S3, and retention (the batch outlives its jobs).
 */
import { createDeps, startWorker, type RunningWorker } from '@scribe-fleet/worker';
import { uniqueBucket } from '../helpers/env';
import { readObject, sampleFiles, uploadSamples } from '../helpers/fleet';
import { startApi, waitBatch, type ApiHarness } from './harness';

jest.setTimeout(90_000);

const bucket = uniqueBucket('api-batches');
let api: ApiHarness;
let worker: RunningWorker;
let samples: Awaited<ReturnType<typeof sampleFiles>>;

beforeAll(async () => {
  samples = await sampleFiles([
    { name: 'api-one.wav', voice: 'kal16', format: 'wav', text: 'the quick brown fox jumps over the lazy dog' },
    { name: 'api-two.wav', voice: 'kal16', format: 'wav', text: 'please call me back when you have a moment' },
    { name: 'api-three.flac', voice: 'kal16', format: 'flac', text: 'we will meet at the office tomorrow morning' },
  ]);
  api = await startApi({ LOCAL_CONCURRENCY: '3', JOB_ATTEMPTS: '1' });
  await uploadSamples(api.storage, bucket, 'in/', samples);
  await uploadSamples(api.storage, bucket, 'more/', samples.slice(0, 2));
  worker = startWorker(api.config, createDeps(api.config));
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
});

async function reportLines(url: string): Promise<Array<Record<string, unknown>>> {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(url)!;
  const text = (await readObject(api.storage, m[1]!, m[2]!)).toString('utf8');
  return text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('a prefix batch', () => {
  let batchId: string;

  it('POST /v1/batches lists and enqueues synchronously within the wait: 201 with the counts', async () => {
    const r = await api.call('POST', '/v1/batches', { body: { source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/`, options: { multichannel: false } } });
    expect(r.status).toBe(201);
    expect(r.body).toEqual({ batchId: expect.stringMatching(/^b_/), listing: false, listed: 3, ignored: 0, added: 3, duplicates: 0, skipped: 0, feeding: false });
    batchId = r.body.batchId;
    expect(r.headers.get('location')).toBe(`/v1/batches/${batchId}`);

    const now = await api.call('GET', `/v1/batches/${batchId}`);
    expect(now.status).toBe(200);
    expect(now.body).toMatchObject({ id: batchId, status: 'running', total: 3, source: `s3://${bucket}/in/`, provider: 'local', mode: 'batch', progress: { total: 3 } });
    expect(now.body.listing).toBeUndefined();
  });

  it('GET /v1/batches/:id: progress, times, audio seconds, ETA and the report URL once finished', async () => {
    const b = await waitBatch(api, batchId, 60_000, () => worker.discover());
    expect(b).toMatchObject({ status: 'finished', total: 3, counts: { completed: 3, failed: 0, queued: 0, active: 0, cancelled: 0, skipped: 0 } });
    expect(Date.parse(b.startedAt)).toBeGreaterThanOrEqual(Date.parse(b.createdAt));
    expect(Date.parse(b.finishedAt)).toBeGreaterThanOrEqual(Date.parse(b.startedAt));
    expect(b.audioSecondsDone).toBeGreaterThan(5);
    expect(b.progress).toMatchObject({ done: 3, total: 3, fraction: 1, etaSeconds: 0, audioSecondsDone: b.audioSecondsDone, audioSecondsTotalEstimate: b.audioSecondsDone });
    expect(b.progress.filesPerSecond).toBeGreaterThan(0);
    expect(b.report).toBe(`s3://${bucket}/out/_reports/${batchId}.jsonl`);

    // The report lists every file (from S3, and through the presigned download link).
    const lines = await reportLines(b.report);
    expect(lines.map((l) => l.key).sort()).toEqual(samples.map((s) => `in/${s.name}`).sort());
    for (const l of lines) {
      expect(l).toMatchObject({ status: 'completed', error_code: null, job_id: expect.stringMatching(/^tx_/) });
      expect(Object.keys(l.outputs as object).sort()).toEqual(['json', 'srt', 'txt', 'vtt']);
    }
    const download = await fetch(b.reportDownloadUrl);
    expect(download.status).toBe(200);
    expect((await download.text()).trim().split('\n')).toHaveLength(3);
  });

  it('GET /v1/batches/:id/jobs pages in batch order and filters by state', async () => {
    const p1 = await api.call('GET', `/v1/batches/${batchId}/jobs?limit=2`);
    expect(p1.status).toBe(200);
    expect(p1.body).toMatchObject({ total: 3, offset: 0, limit: 2 });
    expect(p1.body.jobs.map((j: { position: number }) => j.position)).toEqual([0, 1]);
    const p2 = await api.call('GET', `/v1/batches/${batchId}/jobs?offset=2&limit=2`);
    expect(p2.body.jobs.map((j: { position: number }) => j.position)).toEqual([2]);
    const all = [...p1.body.jobs, ...p2.body.jobs];
    expect(new Set(all.map((j) => j.jobId)).size).toBe(3);
    for (const j of all) expect(j).toMatchObject({ state: 'completed', result: { state: 'completed', duration: expect.any(Number), outputs: expect.any(Object) } });

    const done = await api.call('GET', `/v1/batches/${batchId}/jobs?state=completed`);
    expect(done.body).toMatchObject({ total: 3, state: 'completed' });
    expect(done.body.jobs).toHaveLength(3);
    const failed = await api.call('GET', `/v1/batches/${batchId}/jobs?state=failed`);
    expect(failed.body).toMatchObject({ total: 0, jobs: [] });
  });

  it('GET /v1/jobs/:id: state, outputs, duration; cancelling it now is a 409', async () => {
    const { body } = await api.call('GET', `/v1/batches/${batchId}/jobs?limit=1`);
    const id = body.jobs[0].jobId as string;
    const j = await api.call('GET', `/v1/jobs/${id}`);
    expect(j.status).toBe(200);
    expect(j.body).toMatchObject({ id, batchId, state: 'completed', provider: 'local', mode: 'batch', attemptsMade: 1, duration: expect.any(Number), requestId: expect.any(String) });
    expect(Object.keys(j.body.outputs).sort()).toEqual(['json', 'srt', 'txt', 'vtt']);
    expect(j.body.source).toMatch(new RegExp(`^s3://${bucket}/in/`));
    expect(j.body.error).toBeUndefined();
    const c = await api.call('POST', `/v1/jobs/${id}/cancel`);
    expect(c).toMatchObject({ status: 409, body: { error: { code: 'INVALID_STATE' } } });
    const r = await api.call('POST', `/v1/jobs/${id}/redrive`);
    expect(r).toMatchObject({ status: 409, body: { error: { code: 'INVALID_STATE', message: expect.stringMatching(/only failed jobs/) } } });
  });

  it('enqueuing the same prefix again skips every file (outputs exist); the batch finishes at once', async () => {
    const r = await api.call('POST', '/v1/batches', { body: { source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/`, options: { multichannel: false } } });
    expect(r).toMatchObject({ status: 201, body: { listed: 3, added: 0, skipped: 3 } });
    const b = await waitBatch(api, r.body.batchId, 20_000);
    expect(b.counts).toMatchObject({ skipped: 3, completed: 0 });
    expect((await reportLines(b.report)).every((l) => l.status === 'skipped')).toBe(true);
  });
});

it('a manifest batch (JSONL, per-line options) runs exactly the listed files', async () => {
  const text = [
    `# two of the three`,
    JSON.stringify({ source: `s3://${bucket}/in/${samples[0]!.name}`, options: { multichannel: false } }),
    JSON.stringify({ key: `in/${samples[2]!.name}` }),
  ].join('\n');
  const r = await api.call('POST', '/v1/batches', { body: { manifest: { text, format: 'jsonl', defaultBucket: bucket }, out: `s3://${bucket}/manifest-out/` } });
  expect(r).toMatchObject({ status: 201, body: { listed: 2, added: 2 } });
  const b = await waitBatch(api, r.body.batchId, 60_000, () => worker.discover());
  expect(b).toMatchObject({ source: 'manifest', counts: { completed: 2 } });
  expect((await reportLines(b.report)).map((l) => l.key).sort()).toEqual([`in/${samples[0]!.name}`, `in/${samples[2]!.name}`].sort());
  const obj = await api.storage.head(bucket, `manifest-out/${samples[0]!.name}.json`);
  expect(obj).not.toBeNull();
});

it('past API_CREATE_WAIT_MS the answer is 202 and listing continues in the background', async () => {
  // A second API process on the same queue, which never waits and lists one key per page.
  const async = await startApi({ QUEUE_NAME: api.config.QUEUE_NAME, API_CREATE_WAIT_MS: '0', ENQUEUE_PAGE_SIZE: '1' });
  try {
    const r = await async.call('POST', '/v1/batches', { body: { source: `s3://${bucket}/more/`, out: `s3://${bucket}/more-out/` } });
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ batchId: expect.stringMatching(/^b_/), listing: true });
    expect(r.headers.get('location')).toBe(`/v1/batches/${r.body.batchId}`);
    const b = await waitBatch(async, r.body.batchId, 60_000, () => worker.discover());
    expect(b.listing).toBeUndefined();
    expect(b).toMatchObject({ total: 2, counts: { completed: 2 } });
  } finally {
    await async.close();
  }
});

it('GET /v1/batches: recent first, paged', async () => {
  const all = await api.call('GET', '/v1/batches?limit=50');
  expect(all.status).toBe(200);
  expect(all.body.total).toBe(4);
  expect(all.body.batches).toHaveLength(4);
  const created = all.body.batches.map((b: { createdAt: string }) => Date.parse(b.createdAt));
  expect([...created].sort((a, b) => b - a)).toEqual(created);
  expect(all.body.batches[0]).toMatchObject({ id: expect.any(String), status: expect.any(String), counts: expect.any(Object), progress: expect.any(Object) });
  const page = await api.call('GET', '/v1/batches?offset=1&limit=2');
  expect(page.body.batches.map((b: { id: string }) => b.id)).toEqual(all.body.batches.slice(1, 3).map((b: { id: string }) => b.id));
});

it('retention: once finished jobs are removed from Redis, the batch, its job list and report remain', async () => {
  const short = await startApi({ JOB_RETENTION_SECONDS: '1', JOB_ATTEMPTS: '1' });
  const w = startWorker(short.config, createDeps(short.config));
  try {
    const first = await short.call('POST', '/v1/batches', { body: { source: `s3://${bucket}/in/${samples[0]!.name}`, out: `s3://${bucket}/ret-a/` } });
    const a = await waitBatch(short, first.body.batchId, 60_000, () => w.discover());
    const jobId = (await short.call('GET', `/v1/batches/${a.id}/jobs`)).body.jobs[0].jobId as string;
    expect((await short.call('GET', `/v1/jobs/${jobId}`)).body.state).toBe('completed');
    // BullMQ removes jobs older than the retention when later jobs finish.
    await new Promise((r) => setTimeout(r, 1_500));
    const second = await short.call('POST', '/v1/batches', { body: { source: `s3://${bucket}/in/${samples[1]!.name}`, out: `s3://${bucket}/ret-b/` } });
    await waitBatch(short, second.body.batchId, 60_000, () => w.discover());

    const gone = await short.call('GET', `/v1/jobs/${jobId}`);
    expect(gone).toMatchObject({ status: 404, body: { error: { code: 'JOB_NOT_FOUND', message: expect.stringMatching(/retention/) } } });
    const still = await short.call('GET', `/v1/batches/${a.id}`);
    expect(still).toMatchObject({ status: 200, body: { status: 'finished', counts: { completed: 1 }, report: a.report } });
    const jobs = await short.call('GET', `/v1/batches/${a.id}/jobs`);
    expect(jobs.body.jobs).toEqual([expect.objectContaining({ jobId, state: 'completed', result: expect.objectContaining({ state: 'completed' }) })]);
    expect(await reportLines(a.report)).toHaveLength(1);
  } finally {
    await w.close();
    await short.close();
  }
});
