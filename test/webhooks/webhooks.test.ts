/**
 * Webhooks end to end: a real worker delivers signed `job.completed` / `batch.completed` events to a
 * receiver in this test, which verifies the `x-scribe-signature` (HMAC-SHA256 over "<t>.<body>") the
 * way README shows; a receiver that fails twice is retried with backoff and finally gets it; one that
 * always fails ends `failed`; delivery status is visible through BatchService and the API.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDeps, startWorker, type RunningWorker } from '@scribe-fleet/worker';
import { uniqueBucket } from '../helpers/env';
import { sampleFiles, uploadSamples } from '../helpers/fleet';
import { startApi, waitBatch, type ApiHarness } from '../api/harness';

jest.setTimeout(90_000);

const SECRET = randomBytes(24).toString('hex');
const bucket = uniqueBucket('webhooks');

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  raw: string;
  at: number;
  answered: number;
}

/** The receiver-side check, exactly as README documents it. */
function verifySignature(secret: string, header: string | undefined, rawBody: string, toleranceSeconds = 300): boolean {
  const parts = Object.fromEntries((header ?? '').split(',').map((kv) => kv.split('=', 2) as [string, string]));
  const t = Number(parts.t);
  if (!Number.isFinite(t) || !parts.v1 || Math.abs(Date.now() / 1000 - t) > toleranceSeconds) return false;
  const expected = createHmac('sha256', secret).update(`${parts.t}.${rawBody}`).digest();
  const given = Buffer.from(parts.v1, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

let server: Server;
let base: string;
const received: Received[] = [];
const attemptsByDelivery = new Map<string, number>();
let api: ApiHarness;
let worker: RunningWorker;

beforeAll(async () => {
  server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8').on('data', (d: string) => (raw += d));
    req.on('end', () => {
      const path = req.url ?? '/';
      const delivery = String(req.headers['x-scribe-delivery']);
      const n = (attemptsByDelivery.get(`${path}:${delivery}`) ?? 0) + 1;
      attemptsByDelivery.set(`${path}:${delivery}`, n);
      // /ok always 200; /flaky answers 500 to the first two attempts of each delivery; /down always 500.
      const status = path === '/down' || (path === '/flaky' && n <= 2) ? 500 : 200;
      received.push({ path, headers: req.headers, raw, at: Date.now(), answered: status });
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'thanks' : 'oops');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const samples = await sampleFiles([
    { name: 'hook-a.wav', voice: 'kal16', format: 'wav', text: 'the quick brown fox jumps over the lazy dog' },
    { name: 'hook-b.wav', voice: 'kal16', format: 'wav', text: 'please call me back when you have a moment' },
  ]);
  api = await startApi({
    LOCAL_CONCURRENCY: '2',
    JOB_ATTEMPTS: '1',
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_URL: `${base}/global`,
    WEBHOOK_ATTEMPTS: '4',
    WEBHOOK_BACKOFF_MS: '100',
  });
  await uploadSamples(api.storage, bucket, 'two/', samples);
  await uploadSamples(api.storage, bucket, 'one/', samples.slice(0, 1));
  await uploadSamples(api.storage, bucket, 'down/', samples.slice(1, 2));
  worker = startWorker(api.config, createDeps(api.config));
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
  await new Promise((r) => server?.close(r));
});

/** Wait until `pred` holds for the deliveries recorded by the receiver. */
async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}; received: ${JSON.stringify(received.map((r) => [r.path, r.headers['x-scribe-event'], r.answered]))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function createBatch(prefix: string, hook: string): Promise<string> {
  const r = await api.call('POST', '/v1/batches', { body: { source: `s3://${bucket}/${prefix}`, out: `s3://${bucket}/out-${prefix}`, webhookUrl: `${base}${hook}` } });
  expect(r.status).toBe(201);
  await waitBatch(api, r.body.batchId, 60_000, () => worker.discover());
  return r.body.batchId as string;
}

/** Retry an async assertion until it passes (the queue marks a delivery done just after the answer). */
async function eventually<T>(fn: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() - t0 > timeoutMs) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const bodyOf = (r: Received) => JSON.parse(r.raw) as { event: string; createdAt: string; data: Record<string, any> };

it('signed job.completed and batch.completed deliveries reach the batch URL and WEBHOOK_URL, and verify', async () => {
  const batchId = await createBatch('two/', '/ok');
  const mine = (path: string) => received.filter((r) => r.path === path && bodyOf(r).data.batchId === batchId);
  const ok = await until('3 deliveries on /ok', () => mine('/ok').length >= 3 && mine('/ok'));
  await until('3 deliveries on /global', () => mine('/global').length >= 3);

  expect(ok.map((r) => bodyOf(r).event).sort()).toEqual(['batch.completed', 'job.completed', 'job.completed']);
  for (const r of [...ok, ...mine('/global')]) {
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers['x-scribe-event']).toBe(bodyOf(r).event);
    expect(r.headers['x-scribe-attempt']).toBe('1');
    expect(r.headers['x-scribe-delivery']).toEqual(expect.any(String));
    expect(r.headers['x-scribe-signature']).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(verifySignature(SECRET, r.headers['x-scribe-signature'] as string, r.raw)).toBe(true);
    // The check is real: a changed body, another secret or an old timestamp do not verify.
    expect(verifySignature(SECRET, r.headers['x-scribe-signature'] as string, r.raw.replace('completed', 'c0mpleted'))).toBe(false);
    expect(verifySignature('another-secret-of-some-length', r.headers['x-scribe-signature'] as string, r.raw)).toBe(false);
    expect(verifySignature(SECRET, r.headers['x-scribe-signature'] as string, r.raw, -1)).toBe(false);
  }
  const jobEvents = ok.filter((r) => bodyOf(r).event === 'job.completed').map(bodyOf);
  for (const e of jobEvents) expect(e.data).toMatchObject({ batchId, jobId: expect.stringMatching(/^tx_/), state: 'completed', key: expect.stringMatching(/^two\//), outputs: expect.any(Object) });
  const done = bodyOf(ok.find((r) => bodyOf(r).event === 'batch.completed')!);
  expect(done.data).toMatchObject({ batchId, status: 'finished', total: 2, counts: { completed: 2 }, report: `s3://${bucket}/out-two/_reports/${batchId}.jsonl` });

  // Delivery status: BatchService and GET /v1/batches/:id/webhooks (6 = 3 events × 2 URLs).
  await eventually(async () => {
    const status = await api.service.webhookDeliveries(batchId);
    expect(status.total).toBe(6);
    for (const d of status.deliveries) expect(d).toMatchObject({ state: 'delivered', attempts: 1, httpStatus: 200, deliveredAt: expect.any(String) });
  });
  const r = await api.call('GET', `/v1/batches/${batchId}/webhooks`);
  expect(r.status).toBe(200);
  expect(r.body.total).toBe(6);
  expect(r.body.deliveries.map((d: { url: string }) => d.url).sort()).toEqual([...Array(3).fill(`${base}/global`), ...Array(3).fill(`${base}/ok`)]);
  const page = await api.call('GET', `/v1/batches/${batchId}/webhooks?offset=4&limit=10`);
  expect(page.body.deliveries).toHaveLength(2);
});

it('a receiver that answers 500 twice is retried with backoff and finally gets each event', async () => {
  const batchId = await createBatch('one/', '/flaky');
  const flaky = () => received.filter((r) => r.path === '/flaky' && bodyOf(r).data.batchId === batchId);
  // 2 events (job.completed, batch.completed), 3 attempts each.
  await until('each event delivered on its 3rd attempt', () => flaky().filter((r) => r.answered === 200).length === 2);
  const byDelivery = new Map<string, Received[]>();
  for (const r of flaky()) byDelivery.set(String(r.headers['x-scribe-delivery']), [...(byDelivery.get(String(r.headers['x-scribe-delivery'])) ?? []), r]);
  expect(byDelivery.size).toBe(2);
  for (const attempts of byDelivery.values()) {
    expect(attempts.map((a) => a.headers['x-scribe-attempt'])).toEqual(['1', '2', '3']);
    expect(attempts.map((a) => a.answered)).toEqual([500, 500, 200]);
    expect(attempts.every((a) => verifySignature(SECRET, a.headers['x-scribe-signature'] as string, a.raw))).toBe(true);
    expect(new Set(attempts.map((a) => a.raw)).size).toBe(1); // the same body every time
    expect(attempts[1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(50); // backoff, not a hot loop
    expect(attempts[2]!.at - attempts[1]!.at).toBeGreaterThanOrEqual(attempts[1]!.at - attempts[0]!.at - 60);
  }
  await eventually(async () => {
    const flakyStatus = (await api.service.webhookDeliveries(batchId)).deliveries.filter((d) => d.url === `${base}/flaky`);
    expect(flakyStatus).toHaveLength(2);
    for (const d of flakyStatus) expect(d).toMatchObject({ state: 'delivered', attempts: 3, httpStatus: 200 });
  });
});

it('a receiver that never succeeds ends failed after WEBHOOK_ATTEMPTS, with the last error visible', async () => {
  const batchId = await createBatch('down/', '/down');
  const deliveries = async () => (await api.call('GET', `/v1/batches/${batchId}/webhooks`)).body.deliveries as Array<Record<string, any>>;
  await eventually(async () => {
    const down = (await deliveries()).filter((d) => d.url === `${base}/down`);
    expect(down).toHaveLength(2);
    for (const d of down) expect(d).toMatchObject({ state: 'failed', attempts: 4, lastError: expect.stringMatching(/HTTP 500/) });
  }, 30_000);
  expect(received.filter((r) => r.path === '/down' && bodyOf(r).data.batchId === batchId)).toHaveLength(8);
  // The global URL still got both events.
  await eventually(async () => {
    const global = (await deliveries()).filter((d) => d.url === `${base}/global`);
    expect(global.map((d) => d.state)).toEqual(['delivered', 'delivered']);
  });
});
