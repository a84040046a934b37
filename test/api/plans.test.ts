/**
 * Plans through the HTTP API (issue 15): POST /v1/plans validates as POST /v1/batches does, answers
 * 201 with the plan and its Location, enqueues nothing; GET /v1/plans/{id} reads it back; unknown and
 * malformed ids, unknown fields and refused choices have their codes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisKeys } from '@scribe-fleet/core/adapters/redis/keys';
import { uniqueBucket } from '../helpers/env';
import { startApi, type ApiHarness } from './harness';

jest.setTimeout(90_000);

const bucket = uniqueBucket('api-plans');
let api: ApiHarness;

beforeAll(async () => {
  api = await startApi({ PRICES_FILE: join(__dirname, 'prices.fixture.json') });
  const dir = mkdtempSync(join(tmpdir(), 'scribe-api-plans-'));
  for (const [name, seconds] of [
    ['a.wav', 3],
    ['b.flac', 5],
  ] as const) {
    execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', `sine=frequency=300:sample_rate=16000:duration=${seconds}`, join(dir, name)]);
    await api.storage.ensureBucket(bucket);
    await api.storage.put(bucket, `in/${name}`, readFileSync(join(dir, name)));
  }
});

afterAll(async () => {
  await api?.close();
});

it('POST /v1/plans: 201 with the plan (nothing enqueued); GET /v1/plans/{id} reads it back', async () => {
  const res = await api.call('POST', '/v1/plans', { body: { source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/`, provider: 'deepgram', choices: [{}, { provider: 'fireworks', mode: 'stream' }] } });
  expect([res.status, res.body.error]).toEqual([201, undefined]);
  expect(res.headers.get('location')).toBe(`/v1/plans/${res.body.planId}`);
  expect(res.body.files).toMatchObject({ listed: 2, toDo: 2, done: 0 });
  expect(res.body.audio).toMatchObject({ method: 'exact', measured: 2 });
  expect(res.body.audio.seconds.estimate).toBeCloseTo(8, 1);
  // The operator's price file is read first: its Deepgram figure, the shipped default for Fireworks.
  expect(res.body.choices.map((c: any) => [c.provider, c.price.usdPerMinute, c.price.source])).toEqual([
    ['deepgram', 0.003, 'test contract'],
    ['fireworks', 0.0032, expect.stringMatching(/fireworks\.ai/)],
  ]);
  expect(res.body.choices[0].costUsd.estimate).toBeCloseTo((8 / 60) * 0.003, 2);
  expect(await api.service.batches.count()).toBe(0);
  const got = await api.call('GET', `/v1/plans/${res.body.planId}`);
  expect(got.status).toBe(200);
  expect(got.body).toEqual(res.body);
});

it('refusals: unknown plan, malformed id, unknown field, a choice the catalogue refuses, an option a choice refuses, a bad sample', async () => {
  expect((await api.call('GET', '/v1/plans/plan_0123456789abcdef')).body.error.code).toBe('PLAN_NOT_FOUND');
  expect((await api.call('GET', '/v1/plans/plan_0123456789abcdef')).status).toBe(404);
  expect((await api.call('GET', '/v1/plans/nope')).status).toBe(400);
  const base = { source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/` };
  const unknownField = await api.call('POST', '/v1/plans', { body: { ...base, sampel: 10 } });
  expect(unknownField.status).toBe(400);
  const refused = await api.call('POST', '/v1/plans', { body: { ...base, choices: [{ provider: 'openai', mode: 'stream' }] } });
  expect([refused.status, refused.body.error.code]).toEqual([400, 'UNSUPPORTED_COMBINATION']);
  const option = await api.call('POST', '/v1/plans', { body: { ...base, options: { multichannel: true }, choices: [{ provider: 'openai' }] } });
  expect([option.status, option.body.error.code]).toEqual([400, 'UNSUPPORTED_OPTION']);
  const badSample = await api.call('POST', '/v1/plans', { body: { ...base, sample: 1 } });
  expect(badSample.status).toBe(400);
});

it('POST /v1/batches with a plan link: kept on the batch, GET /v1/batches/{id} shows the plan beside its progress; none once the plan is gone', async () => {
  const base = { source: `s3://${bucket}/in/`, out: `s3://${bucket}/out-linked/` };
  const plan = (await api.call('POST', '/v1/plans', { body: { ...base, provider: 'deepgram', exact: true } })).body;
  expect(plan.choices).toHaveLength(1);
  const created = await api.call('POST', '/v1/batches', { body: { ...base, provider: 'deepgram', plan: { id: plan.planId, choice: 1 } } });
  expect([created.status, created.body.error]).toEqual([201, undefined]);
  const got = await api.call('GET', `/v1/batches/${created.body.batchId}`);
  expect(got.status).toBe(200);
  expect(got.body.plan).toEqual({ id: plan.planId, choice: 1 });
  const c = plan.choices[0];
  expect(got.body.planProgress).toMatchObject({
    planId: plan.planId,
    choice: 1,
    provider: 'deepgram',
    model: c.model,
    mode: 'batch',
    method: 'exact',
    sameRouting: true,
    files: { planned: 2, batch: 2 },
    // Nothing has run (no worker here): nothing done, nothing projected yet.
    audioSeconds: { planned: plan.audio.seconds, done: 0, projected: null, versus: null },
    costUsd: { planned: c.costUsd, usdPerMinute: 0.003, done: 0, projected: null, versus: null },
    wallSeconds: { planned: c.wallSeconds, projected: null, etaSeconds: null },
  });
  expect(Date.parse(got.body.planProgress.plannedEndAt)).toBe(Date.parse(got.body.createdAt) + Math.round(c.wallSeconds.estimate * 1000));
  // The list does not read plans (one batch's view does).
  const list = await api.call('GET', '/v1/batches?limit=5');
  expect(list.body.batches.find((b: any) => b.id === created.body.batchId)).toMatchObject({ plan: { id: plan.planId, choice: 1 } });
  expect(list.body.batches.find((b: any) => b.id === created.body.batchId).planProgress).toBeUndefined();
  // A link to a plan that is not (or no longer) stored: the batch is made and shows no comparison.
  const gone = await api.call('POST', '/v1/batches', { body: { ...base, out: `s3://${bucket}/out-gone/`, plan: { id: 'plan_0000000000000000', choice: 1 } } });
  expect(gone.status).toBe(201);
  const goneView = (await api.call('GET', `/v1/batches/${gone.body.batchId}`)).body;
  expect(goneView.plan).toEqual({ id: 'plan_0000000000000000', choice: 1 });
  expect(goneView.planProgress).toBeUndefined();
  // The record's one JSON field is read back defensively: damaged, the batch reads without a link.
  await api.redis.hset(RedisKeys.forQueue(api.config).batch(gone.body.batchId), 'plan', '{"id":"plan_0000000000000000"');
  const damaged = await api.call('GET', `/v1/batches/${gone.body.batchId}`);
  expect([damaged.status, damaged.body.plan, damaged.body.id]).toEqual([200, undefined, gone.body.batchId]);
});

it('a plan link is checked: a plan id, a choice from 1 to 20, no other field; a plan request takes none', async () => {
  const base = { source: `s3://${bucket}/in/`, out: `s3://${bucket}/out-refused/` };
  for (const plan of [{ id: 'nope', choice: 1 }, { id: 'plan_0123456789abcdef', choice: 0 }, { id: 'plan_0123456789abcdef', choice: 21 }, { id: 'plan_0123456789abcdef' }, { id: 'plan_0123456789abcdef', choice: 1, x: 1 }, 'plan_0123456789abcdef']) {
    const res = await api.call('POST', '/v1/batches', { body: { ...base, plan } });
    expect([JSON.stringify(plan), res.status]).toEqual([JSON.stringify(plan), 400]);
  }
  const planOfPlan = await api.call('POST', '/v1/plans', { body: { ...base, plan: { id: 'plan_0123456789abcdef', choice: 1 } } });
  expect(planOfPlan.status).toBe(400);
  expect(await api.service.batches.count()).toBe(2); // the two of the test before
});
