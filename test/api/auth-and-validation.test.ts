/**
 * The API's edges without a worker: auth refusals, health, the OpenAPI document, and bad input
 * refused synchronously (400/403/404) with nothing enqueued.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ConfigError } from '@scribe-fleet/core';
import { batchServiceOver } from '@scribe-fleet/core/adapters/bullmq/open-services';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { Redis } from 'ioredis';
import { buildApi, REGISTERED_ROUTES } from '../../apps/producer/src/api/server';
import { testStorage, uniqueBucket } from '../helpers/env';
import { testConfig } from '../helpers/fleet';
import { startApi, type ApiHarness } from './harness';

jest.setTimeout(60_000);

let api: ApiHarness;
const bucket = uniqueBucket('api-val');
const outside = uniqueBucket('api-outside');

beforeAll(async () => {
  api = await startApi({ S3_ALLOWED_BUCKETS: bucket });
  await api.storage.ensureBucket(bucket);
  await api.storage.ensureBucket(outside);
  await api.storage.put(bucket, 'in/a.wav', Buffer.from('RIFF'));
  await api.storage.put(bucket, 'in/b.wav', Buffer.from('RIFF2'));
});

afterAll(async () => {
  await api.close();
});

/** Nothing was enqueued and no batch was created (this API has a queue name of its own). */
async function expectNothingEnqueued() {
  expect(await api.fleet.allQueues()).toEqual([]);
  // (BullMQ writes a `meta` key for each queue it opens; no job, batch or bucket key may exist.)
  const keys = await api.redis.keys(`${api.config.QUEUE_PREFIX}:${api.config.QUEUE_NAME}*`);
  expect(keys.filter((k) => !k.endsWith(':meta'))).toEqual([]);
  const list = await api.call('GET', '/v1/batches');
  expect(list.body).toMatchObject({ total: 0, batches: [] });
}

describe('auth', () => {
  const v1 = [
    ['GET', '/v1/batches'],
    ['POST', '/v1/batches'],
    ['GET', '/v1/batches/b_x'],
    ['GET', '/v1/batches/b_x/jobs'],
    ['POST', '/v1/batches/b_x/cancel'],
    ['POST', '/v1/batches/b_x/redrive'],
    ['GET', '/v1/batches/b_x/webhooks'],
    ['GET', '/v1/jobs/tx_x'],
    ['POST', '/v1/jobs/tx_x/cancel'],
    ['POST', '/v1/jobs/tx_x/redrive'],
  ] as const;

  it.each(v1)('%s %s: 401 without a token and with a wrong one', async (method, path) => {
    const none = await api.call(method, path, { auth: null });
    expect(none.status).toBe(401);
    expect(none.body).toEqual({ error: { code: 'UNAUTHORIZED', message: expect.stringMatching(/missing token/) } });
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await api.call(method, path, { auth: 'not-the-token' });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toEqual({ error: { code: 'UNAUTHORIZED', message: 'invalid token' } });
  });

  it('accepts any configured token, and a session cookie (never the raw token in a cookie)', async () => {
    expect((await api.call('GET', '/v1/batches')).status).toBe(200);
    const second = api.config.API_TOKENS[0]!;
    expect((await api.call('GET', '/v1/batches', { auth: second })).status).toBe(200);
    // The dashboard's session cookie (an opaque id, test/security/sessions.test.ts) works like the header.
    const session = await api.signIn();
    const byCookie = await api.call('GET', '/v1/batches', { auth: null, headers: { cookie: `theme=dark; scribe_session=${session}` } });
    expect(byCookie.status).toBe(200);
    const badCookie = await api.call('GET', '/v1/batches', { auth: null, headers: { cookie: 'scribe_session=nope' } });
    expect(badCookie.status).toBe(401);
    // The token itself in a cookie is no credential (the old cookie carried it: that was the defect).
    for (const name of ['scribe_token', 'scribe_session']) {
      const raw = await api.call('GET', '/v1/batches', { auth: null, headers: { cookie: `${name}=${encodeURIComponent(api.token)}` } });
      expect(raw.status).toBe(401);
    }
    // Signed out: the same cookie is refused (and no session key is left behind).
    await api.signOut(session);
    expect((await api.call('GET', '/v1/batches', { auth: null, headers: { cookie: `scribe_session=${session}` } })).status).toBe(401);
    // A prefix of a valid token is not a valid token.
    expect((await api.call('GET', '/v1/batches', { auth: api.token.slice(0, -1) })).status).toBe(401);
  });

  it('health, readiness and the OpenAPI document need no token', async () => {
    expect(await api.call('GET', '/healthz', { auth: null })).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await api.call('GET', '/readyz', { auth: null })).toMatchObject({ status: 200, body: { status: 'ready', checks: { redis: 'ok', s3: 'ok' } } });
    expect((await api.call('GET', '/openapi.json', { auth: null })).status).toBe(200);
  });

  it('refuses to build without tokens, and the server process exits 78 naming API_TOKENS', async () => {
    const config = testConfig({ API_TOKENS: '' });
    const redis = new Redis(config.REDIS_URL);
    const fleet = new FleetQueues(config, redis);
    const storage = testStorage();
    const services = batchServiceOver({ config, redis, storage, fleet });
    const { service, controlQueues } = services;
    try {
      await expect(buildApi({ config, service, fleet, storage, redis, controlQueues })).rejects.toBeInstanceOf(ConfigError);
    } finally {
      await services.close();
      await fleet.close();
      storage.destroy();
      redis.disconnect();
    }
    const main = join(__dirname, '..', '..', 'apps', 'producer', 'dist', 'api', 'main.js');
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [main], { env: { PATH: process.env.PATH ?? '', REDIS_URL: config.REDIS_URL, API_TOKENS: '' }, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.once('exit', (c) => resolve({ code: c, stderr: err }));
    });
    expect(code).toBe(78);
    expect(stderr).toMatch(/API_TOKENS/);
  });
});

describe('OpenAPI document', () => {
  it('describes every route the server registered, with its auth, body and error shape', async () => {
    const doc = (await api.call('GET', '/openapi.json')).body;
    expect(doc.openapi).toMatch(/^3\./);
    const routes = (api.app as unknown as Record<symbol, Array<{ method: string; url: string }>>)[REGISTERED_ROUTES]!;
    expect(routes.length).toBeGreaterThanOrEqual(13);
    for (const r of routes) {
      const path = r.url.replace(/:([A-Za-z_]+)/g, '{$1}');
      const op = doc.paths[path]?.[r.method.toLowerCase()];
      expect({ route: `${r.method} ${r.url}`, described: Boolean(op) }).toEqual({ route: `${r.method} ${r.url}`, described: true });
      if (path.startsWith('/v1/')) {
        expect(op.security).toEqual(expect.arrayContaining([{ bearer: [] }]));
        expect(op.responses['401'].content['application/json'].schema.properties.error.required).toEqual(['code', 'message']);
      } else {
        expect(op.security).toEqual([]);
      }
    }
    const create = doc.paths['/v1/batches'].post;
    expect(create.requestBody.content['application/json'].schema.required).toEqual(['out']);
    expect(Object.keys(create.responses)).toEqual(expect.arrayContaining(['201', '202', '400', '401', '403']));
    expect(create.description).toMatch(/202/);
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.paths['/v1/batches/{id}/jobs'].get.parameters.map((p: { name: string }) => p.name)).toEqual(['id', 'state', 'offset', 'limit']);
  });
});

describe('bad input is refused before anything is enqueued', () => {
  const out = () => `s3://${bucket}/out/`;

  it('invalid S3 URL → 400 INVALID_S3_URL', async () => {
    for (const source of ['http://example.com/x', 's3://', 's3://UPPER/x']) {
      const r = await api.call('POST', '/v1/batches', { body: { source, out: out() } });
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('INVALID_S3_URL');
    }
    const badOut = await api.call('POST', '/v1/batches', { body: { source: `s3://${bucket}/in/`, out: 'out/' } });
    expect(badOut.body.error.code).toBe('INVALID_S3_URL');
  });

  it('bucket outside S3_ALLOWED_BUCKETS → 403 BUCKET_NOT_ALLOWED (source, out and manifest default bucket)', async () => {
    for (const body of [
      { source: `s3://${outside}/in/`, out: out() },
      { source: `s3://${bucket}/in/`, out: `s3://${outside}/out/` },
      { manifest: { text: 'a.wav\n', format: 'csv', defaultBucket: outside }, out: out() },
    ]) {
      const r = await api.call('POST', '/v1/batches', { body });
      expect(r.status).toBe(403);
      expect(r.body.error).toMatchObject({ code: 'BUCKET_NOT_ALLOWED', message: expect.stringContaining(outside) });
    }
  });

  it('unknown provider → UNKNOWN_PROVIDER, unknown model or impossible mode → UNSUPPORTED_COMBINATION (400)', async () => {
    const src = `s3://${bucket}/in/`;
    const p = await api.call('POST', '/v1/batches', { body: { source: src, out: out(), provider: 'nope' } });
    expect(p).toMatchObject({ status: 400, body: { error: { code: 'UNKNOWN_PROVIDER' } } });
    const m = await api.call('POST', '/v1/batches', { body: { source: src, out: out(), provider: 'local', model: 'gpt-9' } });
    expect(m).toMatchObject({ status: 400, body: { error: { code: 'UNSUPPORTED_COMBINATION', message: expect.stringMatching(/unknown model "gpt-9"/) } } });
    const c = await api.call('POST', '/v1/batches', { body: { source: src, out: out(), provider: 'deepgram', model: 'whisper-large', mode: 'stream' } });
    expect(c).toMatchObject({ status: 400, body: { error: { code: 'UNSUPPORTED_COMBINATION' } } });
    const acct = await api.call('POST', '/v1/batches', { body: { source: src, out: out(), account: 'no spaces allowed' } });
    expect(acct).toMatchObject({ status: 400, body: { error: { code: 'INVALID_JOB_SPEC', message: expect.stringMatching(/account/) } } });
  });

  it('an option the provider, model and mode do not take → 400 UNSUPPORTED_OPTION naming it, in the request or a manifest line; nothing enqueued', async () => {
    const src = `s3://${bucket}/in/`;
    const r = await api.call('POST', '/v1/batches', { body: { source: src, out: out(), provider: 'openai', options: { diarize: true } } });
    expect(r).toMatchObject({ status: 400 });
    expect(r.body).toEqual({
      error: {
        code: 'UNSUPPORTED_OPTION',
        message: 'option "diarize" is not supported by openai whisper-1 (batch); supported: language, prompt, temperature',
        details: { option: 'diarize', provider: 'openai', model: 'whisper-1', mode: 'batch' },
      },
    });
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ options: { diarize: true } }, 'diarize'], // the local provider: multichannel only
      [{ provider: 'deepgram', model: 'nova-2', options: { punctuate: true, keyterm: ['fox'] } }, 'keyterm'], // Nova-3 only
      [{ provider: 'deepgram', mode: 'stream', options: { interim_results: true } }, 'interim_results'],
      [{ provider: 'deepgram', options: { punctuate: 'yes' } }, 'punctuate'], // a boolean
    ];
    for (const [extra, option] of cases) {
      const c = await api.call('POST', '/v1/batches', { body: { source: src, out: out(), ...extra } });
      expect({ extra, status: c.status, code: c.body.error?.code, option: c.body.error?.details?.option }).toEqual({ extra, status: 400, code: 'UNSUPPORTED_OPTION', option });
    }
    // A manifest line's own options, for the batch's provider: the line is named.
    const text = [JSON.stringify({ source: `s3://${bucket}/in/a.wav`, options: { language: 'en' } }), JSON.stringify({ source: `s3://${bucket}/in/b.wav`, options: { multichannel: true } })].join('\n');
    const m = await api.call('POST', '/v1/batches', { body: { manifest: { text, format: 'jsonl' }, out: out(), provider: 'openai' } });
    expect(m).toMatchObject({ status: 400, body: { error: { code: 'UNSUPPORTED_OPTION', message: expect.stringMatching(/^manifest line 2: option "multichannel" is not supported by openai whisper-1 \(batch\)/), details: { line: 2, option: 'multichannel' } } } });
    await expectNothingEnqueued();
  });

  it('a manifest with malformed lines → 400 INVALID_MANIFEST naming each line; nothing enqueued', async () => {
    const text = [
      JSON.stringify({ source: `s3://${bucket}/in/a.wav` }),
      '{not json',
      JSON.stringify({ source: `s3://${bucket}/in/b.wav`, options: { multichannel: false } }),
      JSON.stringify({ nothing: true }),
      JSON.stringify({ source: `s3://${bucket}/in/missing.wav` }),
      JSON.stringify({ source: `s3://${bucket}/in/a.wav` }),
      '',
    ].join('\n');
    const r = await api.call('POST', '/v1/batches', { body: { manifest: { text, format: 'jsonl' }, out: out() } });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('INVALID_MANIFEST');
    expect(r.body.error.details.errors.map((e: { line: number }) => e.line)).toEqual([2, 4, 5, 6]);
    expect(r.body.error.message).toMatch(/nothing enqueued/);
    for (const line of [2, 4, 5, 6]) expect(r.body.error.message).toContain(`line ${line}:`);
    expect(r.body.error.details.errors.find((e: { line: number }) => e.line === 5).message).toMatch(/not found/);

    const csv = await api.call('POST', '/v1/batches', { body: { manifest: { text: 'source,options\nin/a.wav,{bad\nin/b.wav,,extra\n', format: 'csv', defaultBucket: bucket }, out: out() } });
    expect(csv.status).toBe(400);
    expect(csv.body.error.details.errors.map((e: { line: number }) => e.line)).toEqual([2, 3]);
    await expectNothingEnqueued();
  });

  it('schema violations, both or neither source, an empty prefix, a missing bucket → 4xx, nothing enqueued', async () => {
    const cases: Array<[unknown, number, string, RegExp?]> = [
      [{ source: `s3://${bucket}/in/` }, 400, 'INVALID_REQUEST', /out/],
      [{ source: `s3://${bucket}/in/`, out: out(), ouput: 'typo' }, 400, 'INVALID_REQUEST', /additional/],
      [{ source: `s3://${bucket}/in/`, out: out(), formats: ['pdf'] }, 400, 'INVALID_REQUEST'],
      [{ source: `s3://${bucket}/in/`, out: out(), priority: 0 }, 400, 'INVALID_REQUEST'],
      [{ source: `s3://${bucket}/in/`, out: out(), options: { nested: { no: 1 } } }, 400, 'INVALID_REQUEST'],
      [{ source: `s3://${bucket}/in/`, out: out(), webhookUrl: 'ftp://x' }, 400, 'INVALID_REQUEST', /webhookUrl/],
      [{ out: out() }, 400, 'INVALID_REQUEST', /exactly one/],
      [{ source: `s3://${bucket}/in/`, manifest: { text: 'x', format: 'csv' }, out: out() }, 400, 'INVALID_REQUEST', /exactly one/],
      [{ source: `s3://${bucket}/nothing-here/`, out: out() }, 400, 'INVALID_REQUEST', /no objects under/],
      [{ manifest: { text: '# only a comment\n', format: 'jsonl' }, out: out() }, 400, 'INVALID_MANIFEST'],
      ['{"source": ', 400, 'INVALID_JSON'],
    ];
    for (const [body, status, code, message] of cases) {
      const r = await api.call('POST', '/v1/batches', { body });
      expect({ body, status: r.status, code: r.body.error?.code }).toEqual({ body, status, code });
      if (message) expect(r.body.error.message).toMatch(message);
    }
    await expectNothingEnqueued();
  });

  it('a source bucket that does not exist → 404 SOURCE_NOT_FOUND', async () => {
    const open = await startApi();
    try {
      const r = await open.call('POST', '/v1/batches', { body: { source: `s3://${uniqueBucket('nobucket')}/x/`, out: `s3://${bucket}/out/` } });
      expect(r).toMatchObject({ status: 404, body: { error: { code: 'SOURCE_NOT_FOUND' } } });
      expect(await open.fleet.allQueues()).toEqual([]);
    } finally {
      await open.close();
    }
  });
});

describe('not found and unavailable', () => {
  it('unknown ids → 404 with the code; unknown routes → 404 NOT_FOUND; bad query → 400', async () => {
    // Well-formed ids that name nothing (a malformed id is a 400: test/security/ids.test.ts).
    const b = 'b_20990101-000000_deadbeef';
    const tx = `tx_${'0'.repeat(40)}`;
    const cases: Array<[string, string, string]> = [
      ['GET', `/v1/batches/${b}`, 'BATCH_NOT_FOUND'],
      ['GET', `/v1/batches/${b}/jobs`, 'BATCH_NOT_FOUND'],
      ['POST', `/v1/batches/${b}/cancel`, 'BATCH_NOT_FOUND'],
      ['POST', `/v1/batches/${b}/redrive`, 'BATCH_NOT_FOUND'],
      ['GET', `/v1/batches/${b}/webhooks`, 'BATCH_NOT_FOUND'],
      ['GET', `/v1/jobs/${tx}`, 'JOB_NOT_FOUND'],
      ['POST', `/v1/jobs/${tx}/cancel`, 'JOB_NOT_FOUND'],
      ['POST', `/v1/jobs/${tx}/redrive`, 'JOB_NOT_FOUND'],
      ['GET', '/v1/nothing', 'NOT_FOUND'],
    ];
    for (const [method, path, code] of cases) {
      const r = await api.call(method, path);
      expect({ path, status: r.status, code: r.body.error?.code }).toEqual({ path, status: 404, code });
    }
    const q = await api.call('GET', '/v1/batches?limit=100000');
    expect(q).toMatchObject({ status: 400, body: { error: { code: 'INVALID_REQUEST' } } });
    const s = await api.call('GET', '/v1/batches/b_x/jobs?state=exploded');
    expect(s).toMatchObject({ status: 400, body: { error: { code: 'INVALID_REQUEST' } } });
  });

  it('Redis down → 503 REDIS_UNAVAILABLE, /readyz 503 naming redis', async () => {
    // A port nothing listens on.
    const down = await startApi({ REDIS_URL: 'redis://127.0.0.1:1' });
    try {
      const r = await down.call('GET', '/v1/batches');
      expect(r).toMatchObject({ status: 503, body: { error: { code: 'REDIS_UNAVAILABLE' } } });
      const ready = await down.call('GET', '/readyz', { auth: null });
      expect(ready.status).toBe(503);
      expect(ready.body.error).toMatchObject({ code: 'REDIS_UNAVAILABLE', details: { checks: { s3: 'ok' } } });
      expect(ready.body.error.details.checks.redis).not.toBe('ok');
    } finally {
      await down.close();
    }
  });
});
