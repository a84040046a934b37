/**
 * Ids from clients never name a key they should not: BullMQ keeps its own keys (`meta` with the
 * queue's global concurrency, `events`, `id`, `wait`, `stalled-check`, …) beside the jobs, and the
 * batch books keep sub-keys beside each batch (`<id>:r`, `<id>:s:<state>`). Through the real API,
 * the use cases and the compiled CLI, on the test Redis: every malformed id is refused (400
 * INVALID_REQUEST in the documented error shape; CLI exit 2) and every key of the queue, the meta
 * hash with its `concurrency` first, is exactly as it was.
 */
import { join } from 'node:path';
import { bullmqQueueKey } from '@scribe-fleet/core/adapters/redis/keys';
import { EXIT } from '../../apps/producer/src/cli';
import { startApi, type ApiHarness } from '../api/harness';
import { runCli } from '../helpers/processes';
import { childEnv, uniqueBucket } from '../helpers/env';

jest.setTimeout(90_000);

const bucket = uniqueBucket('ids');
let api: ApiHarness;
let batchId: string;
let jobId: string;
let metaKey: string;

/** BullMQ's own key names of a queue (and a few spellings of them). */
const BULLMQ_NAMES = ['meta', 'events', 'id', 'wait', 'paused', 'active', 'completed', 'failed', 'delayed', 'prioritized', 'pc', 'marker', 'stalled', 'stalled-check', 'limiter', 'repeat', 'de', 'metrics'];
const MALFORMED_JOB_IDS = [...BULLMQ_NAMES, 'tx_nope', `tx_${'0'.repeat(39)}`, `tx_${'A'.repeat(40)}`, 'meta%2Fcancel', '..%2Fmeta', '%20meta'];

function scribe(args: string[]) {
  return runCli(args, childEnv(api.config));
}

/** Every key of the queue and of the batch books, with its type and full content. */
async function snapshot(): Promise<Record<string, unknown>> {
  const keys = (await api.redis.keys(`${api.config.QUEUE_PREFIX}:${api.config.QUEUE_NAME}*`)).sort();
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const type = await api.redis.type(k);
    if (type === 'hash') out[k] = await api.redis.hgetall(k);
    else if (type === 'list') out[k] = await api.redis.lrange(k, 0, -1);
    else if (type === 'zset') out[k] = await api.redis.zrange(k, 0, -1, 'WITHSCORES');
    else if (type === 'set') out[k] = (await api.redis.smembers(k)).sort();
    else if (type === 'string') out[k] = await api.redis.get(k);
    else if (type === 'stream') out[k] = await api.redis.xrange(k, '-', '+');
    else out[k] = type;
  }
  return out;
}

/** The documented error shape (toMatchObject: `details` may follow). */
const errorShape = (code: string) => ({ error: { code, message: expect.any(String) } });

beforeAll(async () => {
  api = await startApi();
  await api.storage.ensureBucket(bucket);
  await api.storage.put(bucket, 'in/a.wav', 'not audio: no worker runs here, the job stays waiting');
  const r = await api.call('POST', '/v1/batches', { body: { source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/` } });
  expect(r.status).toBe(201);
  batchId = r.body.batchId;
  const jobs = await api.call('GET', `/v1/batches/${batchId}/jobs`);
  jobId = jobs.body.jobs[0].jobId;
  const [queue] = await api.fleet.allQueues();
  metaKey = bullmqQueueKey(api.config.QUEUE_PREFIX, queue!.name, 'meta');
  expect(metaKey).toBe(queue!.toKey('meta'));
});

afterAll(async () => {
  await api?.close();
});

it("the fixture: one queue whose BullMQ meta hash holds the fleet's concurrency, one waiting job, one running batch", async () => {
  expect(await api.redis.hgetall(metaKey)).toMatchObject({ concurrency: expect.stringMatching(/^\d+$/) });
  expect(await api.call('GET', `/v1/jobs/${jobId}`)).toMatchObject({ status: 200, body: { id: jobId, state: 'waiting' } });
  expect(await api.call('GET', `/v1/batches/${batchId}`)).toMatchObject({ status: 200, body: { id: batchId, status: 'running' } });
});

it('GET /v1/jobs/meta → 400 INVALID_REQUEST (was 500); cancel and redrive of BullMQ key names → 400, the meta hash intact', async () => {
  const meta = await api.redis.hgetall(metaKey);
  const before = await snapshot();
  const get = await api.call('GET', '/v1/jobs/meta');
  expect(get).toMatchObject({ status: 400, body: errorShape('INVALID_REQUEST') });
  expect(Object.keys(get.body.error).filter((k) => !['code', 'message', 'details'].includes(k))).toEqual([]);
  for (const id of MALFORMED_JOB_IDS) {
    for (const [method, path] of [
      ['GET', `/v1/jobs/${id}`],
      ['POST', `/v1/jobs/${id}/cancel`],
      ['POST', `/v1/jobs/${id}/redrive`],
    ] as const) {
      const r = await api.call(method, path);
      expect({ path, status: r.status, code: r.body.error?.code }).toEqual({ path, status: 400, code: 'INVALID_REQUEST' });
    }
  }
  expect(await api.redis.hgetall(metaKey)).toEqual(meta);
  expect(meta.concurrency).toBeDefined();
  expect(await snapshot()).toEqual(before);
  // A well-formed id that names nothing is still a 404, and the real job is untouched.
  const unknown = await api.call('POST', `/v1/jobs/tx_${'0'.repeat(40)}/cancel`);
  expect(unknown).toMatchObject({ status: 404, body: errorShape('JOB_NOT_FOUND') });
  expect(await api.call('GET', `/v1/jobs/${jobId}`)).toMatchObject({ status: 200, body: { state: 'waiting' } });
});

it('batch routes with malformed ids (BullMQ names, book sub-keys) → 400; the books and the batch untouched', async () => {
  const before = await snapshot();
  for (const id of ['meta', 'b_nope', 'b_x', `${batchId}:r`, `${batchId}:s:queued`, `${batchId}%3Ar`, `${batchId.toUpperCase()}`, `x${batchId}`, jobId]) {
    for (const [method, path] of [
      ['GET', `/v1/batches/${id}`],
      ['GET', `/v1/batches/${id}/jobs`],
      ['POST', `/v1/batches/${id}/cancel`],
      ['POST', `/v1/batches/${id}/redrive`],
      ['GET', `/v1/batches/${id}/webhooks`],
    ] as const) {
      const r = await api.call(method, path);
      expect({ path, status: r.status, body: r.body }).toEqual({ path, status: 400, body: { error: { code: 'INVALID_REQUEST', message: expect.any(String), details: expect.any(Object) } } });
    }
  }
  expect(await snapshot()).toEqual(before);
  expect(await api.call('GET', `/v1/batches/${batchId}`)).toMatchObject({ status: 200, body: { status: 'running', counts: { queued: 1 } } });
  expect(await api.call('GET', '/v1/batches/b_20990101-000000_deadbeef/jobs')).toMatchObject({ status: 404, body: errorShape('BATCH_NOT_FOUND') });
});

it('the use cases refuse malformed ids themselves (not only the HTTP schema), before touching the queue', async () => {
  const before = await snapshot();
  const s = api.service;
  for (const id of ['meta', 'events', 'id', 'wait', 'stalled-check']) {
    for (const call of [() => s.getJob(id), () => s.cancelJob(id), () => s.redriveJob(id), () => s.getBatch(id), () => s.cancelBatch(id), () => s.redriveBatch(id), () => s.listBatchJobs(id), () => s.webhookDeliveries(id)]) {
      await expect(call()).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    }
    expect(await api.fleet.getJob(id)).toBeUndefined();
  }
  expect(await snapshot()).toEqual(before);
});

it('the documented OpenAPI path parameters carry the id patterns', async () => {
  const doc = (await api.call('GET', '/openapi.json', { auth: null })).body;
  const idOf = (path: string, method: string) => doc.paths[path][method].parameters.find((p: { name: string }) => p.name === 'id');
  expect(idOf('/v1/jobs/{id}', 'get').schema.pattern).toBe('^tx_[0-9a-f]{40}$');
  expect(idOf('/v1/jobs/{id}/cancel', 'post').schema.pattern).toBe('^tx_[0-9a-f]{40}$');
  expect(idOf('/v1/batches/{id}/cancel', 'post').schema.pattern).toBe('^b_[0-9]{8}-[0-9]{6}_[0-9a-f]{8}$');
  expect(new RegExp(idOf('/v1/jobs/{id}', 'get').schema.pattern).test(jobId)).toBe(true);
  expect(new RegExp(idOf('/v1/batches/{id}', 'get').schema.pattern).test(batchId)).toBe(true);
  expect(doc.paths['/v1/jobs/{id}/cancel'].post.responses['400']).toBeDefined();
});

it('CLI: `scribe cancel meta` (and redrive, job) exits 2 INVALID_REQUEST; the meta hash intact', async () => {
  const before = await snapshot();
  const cases = [
    ['cancel', 'meta', '--json'],
    ['redrive', 'meta', '--json'],
    ['redrive', 'events', '--json'],
    ['cancel', 'stalled-check', '--json'],
    ['job', 'meta', '--json'],
    ['watch', 'meta', '--json'],
    ['cancel', `${batchId}:r`, '--json'],
  ];
  const runs = await Promise.all(cases.map((args) => scribe(args)));
  cases.forEach((args, i) => {
    const r = runs[i]!;
    const code = (JSON.parse(r.stdout.trim().split('\n')[0] || '{}') as { error?: { code?: string } }).error?.code;
    expect({ args, exit: r.code, code }).toEqual({ args, exit: EXIT.BAD_INPUT, code: 'INVALID_REQUEST' });
  });
  const human = await scribe(['cancel', 'meta']);
  expect(human.code).toBe(EXIT.BAD_INPUT);
  expect(human.stderr).toMatch(/^scribe: INVALID_REQUEST: not a batch id .* or a job id .*"meta"/);
  expect(await api.redis.hgetall(metaKey)).toMatchObject({ concurrency: expect.any(String) });
  expect(await snapshot()).toEqual(before);
  // A well-formed id still reaches the use case: cancelling the real batch works.
  const ok = await scribe(['cancel', batchId, '--json']);
  expect(ok.code).toBe(EXIT.OK);
  expect(JSON.parse(ok.stdout.trim())).toMatchObject({ id: batchId, kind: 'batch', cancelled: 1 });
  expect(await api.redis.hgetall(metaKey)).toMatchObject({ concurrency: expect.any(String) });
});
