/**
 * End to end over OTLP/HTTP, with the real entry points: `scribe enqueue` (apps/producer/dist/cli.js)
 * and the worker (apps/worker/dist/main.js) run as processes whose instrumentation.ts starts the SDK
 * from the OTEL_* environment, with the http, ioredis and aws-sdk instrumentations live. They export
 * to a receiver in this test. Jobs: a local batch job, a Deepgram batch job whose audio goes to the
 * provider as a presigned URL, and a Deepgram live stream (through the Deepgram emulator).
 *
 * Checks: each attempt is a root trace linked to its producer's enqueue span; and no configured
 * secret (S3 secret key, provider API key, the OTLP bearer token) or URL signature appears anywhere
 * in what was exported (attributes, events, links, resources).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { startDeepgramEmulator, type DeepgramEmulatorHandle } from '@scribe-fleet/emulators';
import { childEnv, s3Coordinates, testStorage, uniqueBucket } from '../helpers/env';
import { sampleFiles, testConfig, uploadSamples, waitForJobs, type Outcome } from '../helpers/fleet';
import { startWorkerProcess } from '../helpers/processes';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './otlp-receiver';

jest.setTimeout(90_000);

const CLI = join(__dirname, '..', '..', 'apps', 'producer', 'dist', 'cli.js');
const PROVIDER_KEY = `dgkey${randomBytes(16).toString('hex')}`;
const BEARER_TOKEN = `otlptoken${randomBytes(16).toString('hex')}`;
const S3_SECRET = s3Coordinates().secretAccessKey;
const KIND = { INTERNAL: 1, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 } as const;

const config = testConfig();
const storage = testStorage();
const bucket = uniqueBucket('otel-e2e');
let receiver: OtlpReceiver;
let deepgram: DeepgramEmulatorHandle;
let redis: Redis;
let fleet: FleetQueues;
const jobs: Array<{ label: string; id: string; outcome?: Outcome }> = [];

function baseEnv(): Record<string, string> {
  return childEnv(config, {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    // An authenticated backend: the exporter sends this header; it must never be in a span.
    OTEL_EXPORTER_OTLP_HEADERS: `Authorization=Bearer%20${BEARER_TOKEN}`,
    // No periodic export: what arrives was flushed at exit (the CLI) or after SIGTERM (the worker).
    OTEL_BSP_SCHEDULE_DELAY: '600000',
  });
}

/** `scribe enqueue … --json` as a process; resolves with its exit code and JSON output. */
function scribeEnqueue(source: string, out: string, provider: string, mode: string): Promise<{ code: number | null; json: unknown; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'enqueue', source, '--out', out, '--provider', provider, '--mode', mode, '--json'], { env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, json: stdout ? JSON.parse(stdout) : undefined, stderr });
    });
  });
}

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  deepgram = await startDeepgramEmulator({ port: 0, keys: { [PROVIDER_KEY]: 'project-1' } });
  const samples = await sampleFiles([{ name: 'otel-e2e.wav', voice: 'kal16', format: 'wav', text: 'the quick brown fox jumps over the lazy dog' }]);
  await uploadSamples(storage, bucket, 'in/', samples);
  redis = new Redis(config.REDIS_URL);
  fleet = new FleetQueues(config, redis);

  // Enqueued before any worker runs (as archives are): the attempt cannot be the enqueue's child.
  const runs = [
    ['local-batch', 'local', 'batch'],
    ['deepgram-url', 'deepgram', 'batch'],
    ['deepgram-live', 'deepgram', 'stream'],
  ] as const;
  for (const [label, provider, mode] of runs) {
    expect(await scribeEnqueue(`s3://${bucket}/in/`, `s3://${bucket}/out/${label}/`, provider, mode)).toMatchObject({ code: 0, json: { added: 1 } });
  }
  // A refused request: exit 2, and its span must still be flushed before the CLI exits.
  expect(await scribeEnqueue(`s3://${bucket}/in/`, `s3://${bucket}/out/x/`, 'nosuch', 'batch')).toMatchObject({ code: 2, json: { error: { code: 'UNKNOWN_PROVIDER' } } });
  for (const q of await fleet.allQueues()) {
    for (const job of await q.getJobs(['waiting', 'prioritized', 'delayed'])) jobs.push({ label: job.data.output.keyBase.split('/')[1]!, id: job.id! });
  }
  expect(jobs.map((j) => j.label).sort()).toEqual(runs.map((r) => r[0]).sort());

  const worker = await startWorkerProcess({
    ...baseEnv(),
    DEEPGRAM_API_KEY: PROVIDER_KEY,
    DEEPGRAM_URL: deepgram.url,
    DEEPGRAM_BATCH_BODY: 'url', // the audio goes to Deepgram as a presigned S3 URL
  });
  try {
    const outcomes = await waitForJobs(fleet, jobs.map((j) => j.id), 60_000);
    for (const j of jobs) j.outcome = outcomes.find((o) => o.id === j.id);
  } finally {
    await worker.stop(); // SIGTERM: close, then flush the spans
  }
}, 90_000);

afterAll(async () => {
  await fleet?.close();
  redis?.disconnect();
  await deepgram?.close();
  await receiver?.close();
});

it('runs every job to completion (the provider key and the presigned URL were really used)', () => {
  expect(jobs.map((j) => [j.label, j.outcome?.state])).toEqual(jobs.map((j) => [j.label, 'completed']));
  expect(deepgram.requests.map((r) => [r.body, r.status])).toEqual([['url', 200]]);
  expect(deepgram.sessions).toHaveLength(1);
});

it('exports over OTLP/HTTP JSON to the configured endpoint with the configured headers', () => {
  expect(receiver.requests.length).toBeGreaterThan(0);
  for (const r of receiver.requests) expect(r.headers.authorization).toBe(`Bearer ${BEARER_TOKEN}`);
  const services = new Set(receiver.spans().map((s) => s.service));
  expect([...services].sort()).toEqual(['scribe-producer', 'scribe-worker']);
});

const spansOf = (service: string) => receiver.spans().filter((s) => s.service === service);

it('each attempt is a new root trace `process <queue>` LINKED to its enqueue span `send <queue>` in the producer', () => {
  const producer = spansOf('scribe-producer');
  const worker = spansOf('scribe-worker');
  for (const job of jobs) {
    const roots = worker.filter((s) => s.name.startsWith('process ') && s.attributes['messaging.message.id'] === job.id);
    expect(roots).toHaveLength(1);
    const root = roots[0]!;
    expect(root.parentSpanId).toBeUndefined();
    expect(root.kind).toBe(KIND.CONSUMER);
    expect(root.attributes).toMatchObject({ 'messaging.system': 'bullmq', 'messaging.operation.type': 'process', 'scribe.outcome': 'completed', 'bullmq.job.attempts.made': 0 });
    expect(root.links).toHaveLength(1);
    const send = producer.find((s) => s.spanId === root.links[0]!.spanId && s.traceId === root.links[0]!.traceId);
    expect(send).toBeDefined();
    expect(send!.kind).toBe(KIND.PRODUCER);
    expect(send!.parentSpanId).toBeUndefined();
    expect(send!.name).toBe(root.name.replace(/^process /, 'send '));
    expect(send!.traceId).not.toBe(root.traceId);
    // The attempt's trace holds the processor's spans and the instrumentations' spans under them.
    const names = new Set(worker.filter((s) => s.traceId === root.traceId).map((s) => s.name));
    const provider = String(root.attributes['transcription.provider']);
    for (const n of ['slot.wait', `session ${provider}`, 's3.put', 'S3.PutObject', 'PUT', 'evalsha']) expect({ job: job.label, has: n, found: names.has(n) }).toEqual({ job: job.label, has: n, found: true });
  }
});

it('a refused enqueue exports its span too, failed with the stable code', () => {
  const refused = spansOf('scribe-producer').filter((s) => s.name.startsWith('send ') && s.attributes['error.type'] !== undefined);
  expect(refused.map((s) => [s.attributes['error.type'], s.status.code, s.attributes['transcription.provider']])).toEqual([['UNKNOWN_PROVIDER', 2, 'nosuch']]);
});

it("the cap semaphore's shared traffic (pump, heartbeats) stays out of the job's slot.wait span", () => {
  const worker = spansOf('scribe-worker');
  const waits = worker.filter((s) => s.name === 'slot.wait');
  expect(waits).toHaveLength(jobs.length);
  for (const w of waits) expect(worker.filter((s) => s.parentSpanId === w.spanId)).toEqual([]);
});

it('the instrumentations ran in both processes (http, aws-sdk, ioredis), with URLs stripped of queries and Redis commands by name only', () => {
  const all = receiver.spans();
  for (const service of ['scribe-producer', 'scribe-worker']) {
    const mine = all.filter((s) => s.service === service);
    expect(mine.some((s) => s.attributes['rpc.system'] === 'aws-api')).toBe(true);
    expect(mine.some((s) => s.kind === KIND.CLIENT && typeof s.attributes['url.full'] === 'string')).toBe(true);
    expect(mine.some((s) => s.attributes['db.system.name'] === 'redis')).toBe(true);
  }
  // The WebSocket upgrade of the live session is an HTTP request too.
  expect(all.some((s) => String(s.attributes['url.full']).endsWith('/v1/listen'))).toBe(true);
  for (const s of all) {
    if ('url.full' in s.attributes) expect(String(s.attributes['url.full'])).not.toMatch(/[?#]/);
    if ('db.query.text' in s.attributes) expect(String(s.attributes['db.query.text'])).toMatch(/^[a-z]+$/);
  }
});

it('no secret anywhere in what was exported: attributes, events, links, resources', () => {
  const spans = receiver.spans();
  expect(spans.length).toBeGreaterThan(50);
  // Every exported byte, as received.
  const exported = receiver.requests.map((r) => r.body).join('\n');
  // And every span as parsed, field by field (so an encoding could not hide one).
  const parsed = spans.map((s) => JSON.stringify([s.attributes, s.events, s.links, s.resource, s.status])).join('\n');
  expect(parsed).toContain('session.final'); // events are in it
  expect(parsed).toContain('"service.name"'); // resources are in it
  const secrets = {
    'S3 secret access key': S3_SECRET,
    'provider API key': PROVIDER_KEY,
    'OTLP bearer token': BEARER_TOKEN,
    'presigned URL signature': 'X-Amz-Signature',
    'presigned URL credential': 'X-Amz-Credential',
    'SigV4 header': 'AWS4-HMAC-SHA256',
  };
  for (const [what, secret] of Object.entries(secrets)) {
    expect({ what, inExport: exported.includes(secret), inSpans: parsed.includes(secret) }).toEqual({ what, inExport: false, inSpans: false });
  }
});
