/**
 * After a full batch through the real processes — the API (`apps/producer/dist/api/main.js`, request
 * logging on), a worker (`apps/worker/dist/main.js`), the Deepgram emulator, a webhook receiver and an
 * OTLP receiver — no configured secret appears anywhere the fleet writes: every Redis key name and
 * value (all types, the whole database), every log line of both processes, every exported span, every
 * object in the output bucket, and every webhook delivery (body and headers). Secrets: the API token,
 * the S3 secret access key, the provider key, the webhook signing secret, the OTLP bearer token.
 * The probes that put secrets in reach on purpose: the token in a query string (`?token=`), a header
 * with a secret value, and a dashboard login.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startDeepgramEmulator, type DeepgramEmulatorHandle } from '@scribe-fleet/emulators';
import { childEnv, s3Coordinates, testStorage, uniqueBucket } from '../helpers/env';
import { sampleFiles, testConfig, uploadSamples } from '../helpers/fleet';
import { startOtlpReceiver, type OtlpReceiver } from '../telemetry/otlp-receiver';

jest.setTimeout(180_000);

const ROOT = join(__dirname, '..', '..');
const API_MAIN = join(ROOT, 'apps', 'producer', 'dist', 'api', 'main.js');
const WORKER_MAIN = join(ROOT, 'apps', 'worker', 'dist', 'main.js');

const SECRETS = {
  'API token': `apitok${randomBytes(16).toString('hex')}`,
  'S3 secret access key': s3Coordinates().secretAccessKey,
  'Deepgram API key': `dgkey${randomBytes(16).toString('hex')}`,
  'webhook secret': `whsec${randomBytes(16).toString('hex')}`,
  'OTLP bearer token': `otlptok${randomBytes(16).toString('hex')}`,
};

const config = testConfig();
const storage = testStorage();
const bucket = uniqueBucket('secrets');

interface Proc {
  child: ChildProcess;
  /** Everything it wrote to stdout and stderr. */
  log: () => string;
  stop(): Promise<number | null>;
}

/** A process with its whole output kept (the log scan reads all of it); resolves once `ready` matches. */
async function start(main: string, env: Record<string, string>, ready: RegExp): Promise<Proc & { match: RegExpExecArray }> {
  const child = spawn(process.execPath, [main], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const check = () => {
      const m = ready.exec(out);
      if (m) {
        child.stdout!.off('data', check);
        resolve(m);
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => reject(new Error(`${main} exited with ${code} before it was ready:\n${out}`)));
  });
  return {
    child,
    match,
    log: () => out,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        await exited;
      }
      return child.exitCode;
    },
  };
}

let otlp: OtlpReceiver;
let deepgram: DeepgramEmulatorHandle;
let hooks: Server;
const deliveries: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
let api: Proc & { match: RegExpExecArray };
let worker: Proc;
let apiUrl: string;
let batch: { id: string; status: string; report?: string } | undefined;

async function call(method: string, path: string, opts: { body?: unknown; headers?: Record<string, string>; auth?: boolean } = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(apiUrl + path, {
    method,
    redirect: 'manual',
    headers: {
      ...(opts.auth === false ? {} : { authorization: `Bearer ${SECRETS['API token']}` }),
      ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...opts.headers,
    },
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // an HTML page or empty
  }
  return { status: res.status, body, headers: res.headers };
}

beforeAll(async () => {
  otlp = await startOtlpReceiver();
  deepgram = await startDeepgramEmulator({ port: 0, keys: { [SECRETS['Deepgram API key']]: 'project-1' } });
  hooks = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      deliveries.push({ headers: req.headers, body: Buffer.concat(parts).toString('utf8') });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', () => r()));
  const samples = await sampleFiles([
    { name: 'secrets-a.wav', voice: 'kal16', format: 'wav', text: 'the quick brown fox jumps over the lazy dog' },
    { name: 'secrets-b.wav', voice: 'slt', format: 'wav', text: 'a secret is safe only where it is never written' },
  ]);
  await uploadSamples(storage, bucket, 'in/', samples);

  const env = childEnv(config, {
    OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
    OTEL_EXPORTER_OTLP_HEADERS: `Authorization=Bearer%20${SECRETS['OTLP bearer token']}`,
    OTEL_BSP_SCHEDULE_DELAY: '600000',
    WEBHOOK_URL: `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hook`,
    WEBHOOK_SECRET: SECRETS['webhook secret'],
  });
  api = await start(API_MAIN, { ...env, API_TOKENS: SECRETS['API token'], API_HOST: '127.0.0.1', API_PORT: '0' }, /listening on (http:\/\/[^\s]+)/);
  apiUrl = api.match[1]!;
  worker = await start(WORKER_MAIN, { ...env, DEEPGRAM_API_KEY: SECRETS['Deepgram API key'], DEEPGRAM_URL: deepgram.url }, /\[worker\] pid/);

  // The probes that put a secret within the server's reach: a token in the query string and a
  // secret-valued header (both must stay out of the logs), and a dashboard login with the token.
  await call('GET', `/v1/batches?token=${SECRETS['API token']}`, { headers: { 'x-debug': SECRETS['webhook secret'] } });
  await fetch(`${apiUrl}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: apiUrl }, body: `token=${SECRETS['API token']}&next=%2Fdashboard` });

  const created = await call('POST', '/v1/batches', { body: { source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/`, provider: 'deepgram', mode: 'batch' } });
  expect([201, 202]).toContain(created.status);
  const id = created.body.batchId ?? created.body.id;
  // Bounded by progress of the batch, not a fixed sleep: poll until it finishes.
  for (let i = 0; i < 600; i++) {
    const r = await call('GET', `/v1/batches/${id}`);
    if (r.body?.finishedAt) {
      batch = r.body;
      break;
    }
    await new Promise((res) => setTimeout(res, 250));
  }
  // The batch.completed delivery (and the job events) are sent by the worker after the finish.
  for (let i = 0; i < 200 && !deliveries.some((d) => d.body.includes('batch.completed')); i++) await new Promise((res) => setTimeout(res, 100));
  await worker.stop(); // SIGTERM: flushes the worker's spans
  await api.stop(); // and the API's
});

afterAll(async () => {
  await worker?.stop();
  await api?.stop();
  await deepgram?.close();
  await otlp?.close();
  await new Promise<void>((r) => (hooks ? hooks.close(() => r()) : r()));
});

/** Which of the secrets `text` holds (by name). */
const found = (text: string) => Object.entries(SECRETS).filter(([, s]) => text.includes(s)).map(([what]) => what);

test('the batch ran end to end with the secrets in use (provider key accepted, webhooks signed and delivered)', () => {
  expect(batch).toMatchObject({ status: 'finished' });
  expect(deepgram.requests.map((r) => r.status)).toEqual([200, 200]);
  expect(deliveries.some((d) => d.body.includes('batch.completed'))).toBe(true);
  for (const d of deliveries) expect(d.headers['x-scribe-signature']).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
  expect(otlp.spans().length).toBeGreaterThan(10);
});

test('no secret in any Redis key name or value (the whole database, every type)', async () => {
  const redis = new Redis(config.REDIS_URL);
  try {
    let cursor = '0';
    let keys = 0;
    const hits: string[] = [];
    do {
      const [next, batchKeys] = await redis.scan(cursor, 'COUNT', 1000);
      cursor = next;
      for (const key of batchKeys) {
        keys += 1;
        const type = await redis.type(key);
        let value = '';
        if (type === 'string') value = (await redis.getBuffer(key))?.toString('latin1') ?? '';
        else if (type === 'hash') value = JSON.stringify(await redis.hgetall(key));
        else if (type === 'list') value = JSON.stringify(await redis.lrange(key, 0, -1));
        else if (type === 'set') value = JSON.stringify(await redis.smembers(key));
        else if (type === 'zset') value = JSON.stringify(await redis.zrange(key, 0, -1));
        else if (type === 'stream') value = JSON.stringify(await redis.xrange(key, '-', '+'));
        for (const what of found(`${key}\n${value}`)) hits.push(`${what} in ${type} ${key}`);
      }
    } while (cursor !== '0');
    expect(keys).toBeGreaterThan(20);
    expect(hits).toEqual([]);
  } finally {
    redis.disconnect();
  }
});

test('no secret in any log line of the API or the worker', () => {
  const apiLog = api.log();
  // The API really logged the probing requests (with logging off this test would prove nothing).
  expect(apiLog).toMatch(/\/v1\/batches/);
  expect({ api: found(apiLog), worker: found(worker.log()) }).toEqual({ api: [], worker: [] });
});

test('no secret in any exported span (attributes, events, links, resources)', () => {
  expect(otlp.requests.length).toBeGreaterThan(0);
  expect(otlp.requests.flatMap((r) => found(r.body))).toEqual([]);
});

test('no secret in any object the batch wrote (outputs, report, summary)', async () => {
  const objects: string[] = [];
  for await (const page of storage.listPages(bucket, 'out/')) for (const o of page) objects.push(o.key);
  expect(objects.some((k) => k.endsWith('.json'))).toBe(true);
  expect(objects.some((k) => k.includes('_reports/'))).toBe(true);
  const hits: string[] = [];
  for (const key of objects) {
    const chunks: Buffer[] = [];
    for await (const c of (await storage.get(bucket, key)).body) chunks.push(Buffer.from(c as Uint8Array));
    for (const what of found(Buffer.concat(chunks).toString('utf8'))) hits.push(`${what} in ${key}`);
  }
  expect(hits).toEqual([]);
});

test('no secret in any webhook delivery (body or headers)', () => {
  expect(deliveries.length).toBeGreaterThan(0);
  expect(deliveries.flatMap((d) => found(`${JSON.stringify(d.headers)}\n${d.body}`))).toEqual([]);
});
