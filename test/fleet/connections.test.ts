/**
 * Connection budget of one worker process (a real OS process, the compiled worker) against the number
 * of cap buckets: N batches, one per Deepgram account (so N cap buckets), the reconciler sweeping
 * every second (it looks the batches' jobs up in their bucket queues). The worker's connections are
 * counted as the Redis server sees them (`CLIENT LIST` entries whose peer port is one of the process's
 * sockets), sampled every 100 ms the whole time.
 *
 * The bound (ARCHITECTURE.md, "Connection budget"): BASE + min(buckets with work, WORKER_MAX_BUCKETS).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { openBatchService } from '@scribe-fleet/core/adapters/bullmq/open-services';
import { poolKey, startDeepgramEmulator, type DeepgramEmulatorHandle } from '@scribe-fleet/emulators';
import { childEnv, redisUrl, testStorage, uniqueBucket } from '../helpers/env';
import { testConfig, waitForJobs } from '../helpers/fleet';
import { connectionsOf } from '../helpers/connections';
import { startWorkerProcess, type WorkerProcess } from '../helpers/processes';

jest.setTimeout(300_000);

/**
 * Connections of a worker process that do not depend on the buckets: the host's connection (shared
 * by every BullMQ Worker and Queue of the process), its cancel subscriber, the limiter's connection
 * and its subscriber, and the blocking connections of the control and webhook Workers.
 */
const BASE = 6;
const KEY = 'dg-conn-key';
const PRERECORDED = poolKey('project-1', 'prerecorded');
const storage = testStorage();
const bucket = uniqueBucket('conn');
const redis = new Redis(redisUrl());
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'scribe-conn-'));
  execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=16000', '-t', '0.5', join(dir, 'clip.wav')]);
  await storage.ensureBucket(bucket);
  await storage.put(bucket, 'in/clip.wav', readFileSync(join(dir, 'clip.wav')));
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  redis.disconnect();
});

async function until(what: () => string, pred: () => boolean | Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const t0 = Date.now();
  while (!(await pred())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** An emulator answering each pre-recorded request after `serviceMs`, a queue of its own, a producer. */
async function world(serviceMs: number) {
  const emu: DeepgramEmulatorHandle = await startDeepgramEmulator({ keys: { [KEY]: 'project-1' }, serviceTimeMs: { prerecorded: serviceMs } });
  cleanups.push(() => emu.close());
  const config = testConfig({ DEEPGRAM_API_KEY: KEY, DEEPGRAM_URL: emu.url });
  const producer = openBatchService(config, storage, 'producer');
  cleanups.push(() => producer.close());
  /** One one-file batch per bucket (accounts acct0 … acct<n-1>); their job ids. */
  const batches = async (n: number, tag: string) => {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const out = `s3://${bucket}/out/${config.QUEUE_NAME}/${tag}/${i}/`;
      const res = await producer.service.create({ source: `s3://${bucket}/in/`, out, provider: 'deepgram', model: 'nova-3', account: `acct${i}` }, { returnIdsUpTo: 10 });
      ids.push(...(res.jobIds ?? []));
    }
    return ids;
  };
  return { emu, config, producer, batches };
}

/** The worker process, and its connection count sampled every 100 ms until it exits. */
async function worker(w: Awaited<ReturnType<typeof world>>, env: Record<string, string> = {}) {
  const proc: WorkerProcess = await startWorkerProcess(
    childEnv(w.config, { DEEPGRAM_API_KEY: KEY, DEEPGRAM_URL: w.emu.url, BUCKET_DISCOVERY_MS: '200', RECONCILE_INTERVAL_MS: '1000', METRICS_PORT: '0', ...env }),
  );
  cleanups.push(() => proc.kill9());
  /** `atMax`: the connections (name and last command) when the count first reached its maximum. */
  const s = { now: 0, max: 0, changedAt: Date.now(), samples: 0, atMax: '' };
  const sample = async () => {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
    const list = await connectionsOf(redis, proc.pid).catch(() => []);
    const c = list.length;
    if (c !== s.now) (s.now = c), (s.changedAt = Date.now());
    if (c > s.max) s.atMax = list.map((e) => `${e.name || '-'}:${e.cmd}`).join(' ');
    s.max = Math.max(s.max, c);
    s.samples += 1;
  };
  await sample();
  const timer = setInterval(() => void sample(), 100);
  proc.child.once('exit', () => clearInterval(timer));
  cleanups.push(async () => clearInterval(timer));
  return { proc, s };
}

it.each([1, 4, 16])('%i bucket(s) with a job in session: at most BASE + buckets connections', async (n) => {
  const w = await world(600_000);
  await w.batches(n, 'held');
  const { proc, s } = await worker(w);
  await until(() => `${n} sessions in flight (worker output:\n${proc.output()})`, () => w.emu.concurrency.inFlight(PRERECORDED) === n);
  // Steady: unchanged for four reconciler sweeps.
  await until(() => 'a steady connection count', () => Date.now() - s.changedAt >= 4_000);
  const conns = await connectionsOf(redis, proc.pid);
  console.log(`[connections] ${n} bucket(s): steady ${conns.length} (${conns.filter((c) => c.name).length} named), max ${s.max} over ${s.samples} samples (at max: ${s.atMax}); bound ${BASE + n}`);
  expect(s.max).toBeLessThanOrEqual(BASE + n);
  expect(conns.length).toBeGreaterThanOrEqual(BASE + 1);
});

it('16 buckets, WORKER_MAX_BUCKETS=4: at most BASE + 4 connections, and every bucket is served in turn', async () => {
  const w = await world(600_000);
  await w.batches(16, 'turns');
  const { proc, s } = await worker(w, { WORKER_MAX_BUCKETS: '4', WORKER_BUCKET_TURN_MS: '1000' });
  // Each job holds its session (600 s): a bucket given up keeps its job running, another takes the slot.
  await until(() => `16 sessions in flight, ${w.emu.concurrency.inFlight(PRERECORDED)} so far (worker output:\n${proc.output()})`, () => w.emu.concurrency.inFlight(PRERECORDED) === 16);
  console.log(`[connections] 16 buckets, WORKER_MAX_BUCKETS=4: max ${s.max} over ${s.samples} samples (at max: ${s.atMax}); bound ${BASE + 4}`);
  expect(s.max).toBeLessThanOrEqual(BASE + 4);
  expect(w.emu.concurrency.maxConcurrent(PRERECORDED)).toBe(16);
});

it('buckets idle for WORKER_BUCKET_IDLE_MS cost no connection, and are consumed again when they have work', async () => {
  const w = await world(200);
  const first = await w.batches(4, 'first');
  const { proc, s } = await worker(w, { WORKER_BUCKET_IDLE_MS: '1000' });
  expect((await waitForJobs(w.producer.fleet, first)).filter((o) => o.state !== 'completed')).toEqual([]);
  await until(() => `the idle buckets given up (${s.now} connections)`, () => s.now === BASE);
  // New work in two of the buckets: consumed again, run once each.
  const again = await w.batches(2, 'again');
  expect((await waitForJobs(w.producer.fleet, again)).filter((o) => o.state !== 'completed')).toEqual([]);
  expect(w.emu.concurrency.sessions(PRERECORDED)).toBe(6);
  console.log(`[connections] idle buckets: max ${s.max} over ${s.samples} samples (at max: ${s.atMax}); bound ${BASE + 4}, ${BASE} when idle`);
  expect(s.max).toBeLessThanOrEqual(BASE + 4);
  expect(proc.output()).not.toMatch(/bucket discovery:/);
});
