/**
 * Worker memory is bounded whatever the input size (issue 12): a ≥ 1 GB WAV in the S3 server goes
 * through a real worker process (apps/worker/dist/main.js) by the Deepgram pre-recorded path and the
 * OpenAI batch path (split into WAV pieces), against the emulators in benchmark mode (the body is read
 * in full, nothing is recognised). The worker's peak RSS (VmHWM) may exceed its RSS before the job by
 * less than 150 MB. A client that buffers the body (e.g. Node's `fetch` with a streamed body,
 * nodejs/undici#4058) grows by about the file's size and fails this.
 */
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { enqueuePrefix } from '@scribe-fleet/producer';
import { startDeepgramEmulator, type DeepgramEmulatorHandle } from '@scribe-fleet/emulators';
import { noiseWav } from '@scribe-fleet/emulators';
import { startOpenAIEmulator, type OpenAIEmulatorHandle } from '@scribe-fleet/emulators';
import { childEnv, redisUrl, testStorage, uniqueBucket } from '../helpers/env';
import { testConfig } from '../helpers/fleet';
import { startWorkerProcess } from '../helpers/processes';

jest.setTimeout(300_000);

const MB = 1024 * 1024;
const INPUT_BYTES = Number(process.env.SCRIBE_MEMORY_TEST_BYTES ?? 1024 * MB);
const LIMIT_BYTES = 150 * MB;
const KEY = 'mem-key';
const storage = testStorage();
const bucket = uniqueBucket('mem');
const key = 'in/large.wav';
const redis = new Redis(redisUrl());
let deepgram: DeepgramEmulatorHandle;
let openai: OpenAIEmulatorHandle;


/** A field of /proc/<pid>/status (VmRSS, VmHWM) in bytes. */
function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

beforeAll(async () => {
  deepgram = await startDeepgramEmulator({ keys: { [KEY]: 'project-1' }, serviceTimeMs: { prerecorded: 0 } });
  openai = await startOpenAIEmulator({ keys: [KEY], serviceTimeMs: 0 });
  await storage.ensureBucket(bucket);
  await storage.put(bucket, key, noiseWav(INPUT_BYTES), { contentLength: INPUT_BYTES, contentType: 'audio/wav' });
});

afterAll(async () => {
  await deepgram?.close();
  await openai?.close();
  await storage.delete(bucket, key).catch(() => undefined);
  storage.client.destroy();
  redis.disconnect();
});

/** One job on the large input through a fresh worker process: its RSS growth and the job's outcome. */
async function growthOf(provider: 'deepgram' | 'openai', model: string): Promise<{ growth: number; before: number; peak: number; state: string }> {
  const providerEnv: Record<string, string> =
    provider === 'deepgram' ? { DEEPGRAM_API_KEY: KEY, DEEPGRAM_URL: deepgram.url } : { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: openai.baseUrl };
  const config = testConfig(providerEnv);
  const worker = await startWorkerProcess(childEnv(config, providerEnv));
  const fleet = new FleetQueues(config, redis);
  try {
    await new Promise((r) => setTimeout(r, 500)); // start-up settles (connections, first timers)
    const before = procStatus(worker.pid, 'VmRSS');
    const { jobIds } = await enqueuePrefix({ source: `s3://${bucket}/${key}`, out: `s3://${bucket}/out-${provider}/`, provider, model }, { storage, fleet });
    let state = 'completed';
    await fleet.waitForJob(jobIds[0]!, 240_000).catch((e: Error) => (state = `failed: ${e.message}`));
    const peak = procStatus(worker.pid, 'VmHWM');
    return { growth: peak - before, before, peak, state };
  } finally {
    await worker.kill9();
    await fleet.close();
  }
}

const mb = (b: number) => `${(b / MB).toFixed(1)} MB`;

test.each([
  ['deepgram', 'nova-3', 'Deepgram pre-recorded body streamed from S3'],
  ['openai', 'whisper-1', 'OpenAI batch, decoded and uploaded in 25 MiB WAV pieces'],
] as const)('a %s batch job on a 1 GiB input grows the worker by < 150 MB (%s, %s)', async (provider, model, _path) => {
  const r = await growthOf(provider, model);
  console.log(`${provider}: RSS before ${mb(r.before)}, peak ${mb(r.peak)}, growth ${mb(r.growth)} for ${mb(INPUT_BYTES)} of input`);
  expect(r.state).toBe('completed');
  expect(r.growth).toBeLessThan(LIMIT_BYTES);
});
