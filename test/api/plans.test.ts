/**
 * Plans through the HTTP API (issue 15): POST /v1/plans validates as POST /v1/batches does, answers
 * 201 with the plan and its Location, enqueues nothing; GET /v1/plans/{id} reads it back; unknown and
 * malformed ids, unknown fields and refused choices have their codes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
