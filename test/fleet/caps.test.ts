/**
 * Fleet-wide caps with real worker processes (separate OS processes), real Redis, the S3 server and
 * the strict Deepgram emulator in fixed-service-time mode. The emulator counts what is truly in flight
 * at the "provider"; that count must never pass the cap.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { enqueuePrefix } from '@scribe-fleet/producer';
import { redisLimiter } from '@scribe-fleet/worker';
import { startDeepgramEmulator, type DeepgramEmulatorHandle, type DeepgramEmulatorOptions } from '@scribe-fleet/emulators';
import { redisUrl, s3Coordinates, testStorage, uniqueBucket } from '../helpers/env';
import { testConfig, waitForJobs } from '../helpers/fleet';
import { startWorkerProcess, type WorkerProcess } from '../helpers/processes';

jest.setTimeout(180_000);

const KEY = 'dg-fleet-key';
const storage = testStorage();
const bucket = uniqueBucket('caps');
const redis = new Redis(redisUrl());
const cleanups: Array<() => Promise<unknown>> = [];
let clip: Buffer;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'scribe-caps-'));
  execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=16000', '-t', '0.5', join(dir, 'clip.wav')]);
  clip = readFileSync(join(dir, 'clip.wav'));
  await storage.ensureBucket(bucket);
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  redis.disconnect();
});

async function upload(prefix: string, n: number) {
  for (let i = 0; i < n; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, j) => storage.put(bucket, `${prefix}${String(i + j).padStart(4, '0')}.wav`, clip)));
  }
}

async function emulator(opts: DeepgramEmulatorOptions): Promise<DeepgramEmulatorHandle> {
  const emu = await startDeepgramEmulator({ keys: { [KEY]: 'project-1' }, ...opts });
  cleanups.push(() => emu.close());
  return emu;
}

/** A fleet: its config (own queue names), N worker processes and a producer-side view of its queues. */
async function fleetOf(n: number, emu: DeepgramEmulatorHandle, env: Record<string, string>) {
  const config = testConfig({ DEEPGRAM_API_KEY: KEY, DEEPGRAM_URL: emu.url, BUCKET_DISCOVERY_MS: '200', JOB_BACKOFF_MS: '200', ...env });
  const workerEnv: Record<string, string> = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => /^(S3_|REDIS_URL)/.test(k)) as Array<[string, string]>),
    QUEUE_NAME: config.QUEUE_NAME,
    DEEPGRAM_API_KEY: KEY,
    DEEPGRAM_URL: emu.url,
    BUCKET_DISCOVERY_MS: '200',
    JOB_BACKOFF_MS: '200',
    ...env,
  };
  const procs: WorkerProcess[] = [];
  for (let i = 0; i < n; i++) procs.push(await startWorkerProcess(workerEnv));
  const fleet = new FleetQueues(config, redis);
  cleanups.push(async () => {
    for (const p of procs) await p.kill9();
    await fleet.close();
  });
  return { config, procs, fleet, workerEnv };
}

async function enqueue(fleet: FleetQueues, prefix: string, model: string) {
  return enqueuePrefix({ source: `s3://${bucket}/${prefix}`, out: `s3://${bucket}/out/${model}/${prefix}`, provider: 'deepgram', model }, { storage, fleet });
}

it('three worker processes, 200 jobs each against caps of 5 and 100: never over, never refused, all done', async () => {
  const emu = await emulator({ serviceTimeMs: { whisper: 100, prerecorded: 400 } });
  const { fleet } = await fleetOf(3, emu, { SCRIBE_CAPS: 'deepgram:*:whisper:batch=5,deepgram:*:nova:batch=100' });
  await upload('a/', 200);
  const [w, n] = await Promise.all([enqueue(fleet, 'a/', 'whisper-large'), enqueue(fleet, 'a/', 'nova-3')]);
  expect(w.added + n.added).toBe(400);
  const outcomes = await waitForJobs(fleet, [...w.jobIds, ...n.jobIds], 150_000);
  expect(outcomes.filter((o) => o.state !== 'completed')).toEqual([]);
  expect(emu.concurrency.maxConcurrent('project-1/whisper')).toBe(5);
  expect(emu.concurrency.maxConcurrent('project-1/prerecorded')).toBeLessThanOrEqual(100);
  expect(emu.concurrency.maxConcurrent('project-1/prerecorded')).toBeGreaterThan(50);
  expect(emu.concurrency.refusals('project-1/whisper')).toBe(0);
  expect(emu.concurrency.refusals('project-1/prerecorded')).toBe(0);
});

it('kill -9 of a process holding slots: the slots come back within the lease TTL and no job is lost', async () => {
  const emu = await emulator({ serviceTimeMs: { whisper: 4000 } });
  const env = { SCRIBE_CAPS: 'deepgram:*:whisper:batch=5', LEASE_TTL_MS: '3000', WORKER_LOCK_MS: '4000' };
  const first = await fleetOf(1, emu, env);
  await upload('k/', 15);
  const res = await enqueue(first.fleet, 'k/', 'whisper-large');
  // The first process takes every slot.
  await new Promise<void>((resolve) => {
    const off = emu.concurrency.onChange((key, n) => {
      if (key === 'project-1/whisper' && n === 5) (off(), resolve());
    });
  });
  const limiter = redisLimiter(first.config);
  const leases = async () => (await limiter.snapshot('deepgram:default:whisper:batch')).inFlight;
  expect(await leases()).toBe(5);
  await first.procs[0]!.kill9();
  const killedAt = performance.now();
  // Nobody else holds a job yet, so nothing re-takes a slot: watch the crashed holder's leases expire.
  while ((await leases()) > 0 && performance.now() - killedAt < 10_000) await new Promise((r) => setTimeout(r, 100));
  const slotsBackMs = performance.now() - killedAt;
  await limiter.close();
  expect(slotsBackMs).toBeLessThan(3000 + 500); // LEASE_TTL_MS (+ one poll)
  // Its 7 active jobs (5 in session, 2 prepared) stall: the lock (4 s) expires, the stalled check
  // (every 4 s) returns them to the queue, and the other processes run them from the start.
  const others = await fleetOf(2, emu, { ...env, QUEUE_NAME: first.config.QUEUE_NAME });
  const outcomes = await waitForJobs(others.fleet, res.jobIds, 120_000);
  expect(outcomes.filter((o) => o.state !== 'completed')).toEqual([]);
  expect(emu.concurrency.maxConcurrent('project-1/whisper')).toBe(5);
  expect(emu.concurrency.refusals('project-1/whisper')).toBe(0);
});

it('provider cap below ours: 429s lower the fleet cap, it settles under the real limit, no job fails', async () => {
  const emu = await emulator({ serviceTimeMs: { prerecorded: 300 }, caps: { prerecorded: 8 } });
  const { fleet, config } = await fleetOf(3, emu, { SCRIBE_CAPS: 'deepgram:*:nova:batch=20', CAP_INCREASE_INTERVAL_MS: '1000' });
  await upload('r/', 240);
  const res = await enqueue(fleet, 'r/', 'nova-3');
  const outcomes = await waitForJobs(fleet, res.jobIds, 150_000);
  expect(outcomes.filter((o) => o.state !== 'completed')).toEqual([]);
  for (const id of res.jobIds) expect((await fleet.getJob(id))!.attemptsMade).toBeLessThanOrEqual(1);
  // Settling: the 429s cluster at the start (the fleet began at 20, the provider takes 8); in the
  // second half of the run only the additive-increase probes get refused.
  const reqs = emu.requests.filter((r) => r.status !== undefined);
  const t0 = Math.min(...reqs.map((r) => r.startedAt));
  const t1 = Math.max(...reqs.map((r) => r.startedAt));
  const half = (first: boolean) => reqs.filter((r) => (r.startedAt < (t0 + t1) / 2) === first);
  const rate = (rs: typeof reqs) => rs.filter((r) => r.status === 429).length / rs.length;
  expect(rate(half(true))).toBeGreaterThan(0);
  expect(rate(half(false))).toBeLessThan(0.2);
  expect(rate(half(false))).toBeLessThan(rate(half(true)));
  // The effective cap ended near the real limit (8), far below the configured 20.
  const limiter = redisLimiter(config);
  const snap = await limiter.snapshot('deepgram:default:nova:batch');
  await limiter.close();
  expect(snap.configuredCap).toBe(20);
  expect(snap.effectiveCap).toBeLessThanOrEqual(10);
  expect(emu.concurrency.maxConcurrent('project-1/prerecorded')).toBe(8);
});

it('a saturated bucket does not slow another bucket', async () => {
  const emu = await emulator({ serviceTimeMs: { whisper: 1000, prerecorded: 300 } });
  const { fleet } = await fleetOf(3, emu, { SCRIBE_CAPS: 'deepgram:*:whisper:batch=5,deepgram:*:nova:batch=100' });
  await upload('s/', 60);
  const slow = await enqueue(fleet, 's/', 'whisper-large'); // 60 jobs at 5 × 1 s: a 12 s backlog
  await new Promise<void>((resolve) => {
    const off = emu.concurrency.onChange((key, n) => {
      if (key === 'project-1/whisper' && n === 5) (off(), resolve());
    });
  });
  const t0 = performance.now();
  const fast = await enqueuePrefix({ source: `s3://${bucket}/s/000`, out: `s3://${bucket}/out/fast/`, provider: 'deepgram', model: 'nova-3' }, { storage, fleet });
  expect(fast.added).toBe(10);
  await waitForJobs(fleet, fast.jobIds, 60_000);
  const fastSeconds = (performance.now() - t0) / 1000;
  const slowDone = (await Promise.all(slow.jobIds.map(async (id) => (await fleet.getJob(id))!.isCompleted()))).filter(Boolean).length;
  expect(fastSeconds).toBeLessThan(3);
  expect(slowDone).toBeLessThan(30); // the whisper backlog is still being worked through
  await waitForJobs(fleet, slow.jobIds, 60_000);
});
