/**
 * The chaos suite (`npm run chaos` for the full counts; `npm test` runs it with smaller ones). Each
 * scenario builds a world of real processes (harness.ts), injects its faults while a batch runs,
 * waits for the batch to end (bounded by progress, not by a fixed time) and audits the promise.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDeepgramEmulator, type DeepgramEmulatorHandle } from '../emulators/src/deepgram';
import { ChaosWorld, count, recordFigures, type ChaosFigures } from './harness';

jest.setTimeout(40 * 60_000);

const KEY = 'dg-chaos-key';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let clip: Buffer;

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'scribe-chaos-clip-'));
  execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=16000', '-t', '0.5', join(dir, 'clip.wav')]);
  clip = readFileSync(join(dir, 'clip.wav'));
});

const files = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `${String(i).padStart(5, '0')}.wav`, body: clip }));

/** A world whose workers transcribe with the Deepgram emulator (pre-recorded, fixed service time). */
async function deepgramWorld(emu: DeepgramEmulatorHandle, cap: number, env: Record<string, string> = {}, workers = 3): Promise<ChaosWorld> {
  return ChaosWorld.start({
    workers,
    env: { DEEPGRAM_API_KEY: KEY, DEEPGRAM_URL: emu.url, SCRIBE_CAPS: `deepgram:*:nova:batch=${cap}`, WORKER_CONCURRENCY: '10', ...env },
  });
}

function expectClean(f: ChaosFigures, allowedCodes: string[] = []): void {
  expect(f.problems).toEqual([]);
  expect(Object.keys(f.failedByCode).filter((c) => !allowedCodes.includes(c))).toEqual([]);
  expect(f.lost).toBe(0);
  expect(f.batchesHung).toBe(0);
  expect(f.duplicateOutputWrites).toBe(0);
  expect(f.duplicateWebhooks).toBe(0);
  expect(f.overshoot).toBe(0);
}

let world: ChaosWorld | undefined;
let emu: DeepgramEmulatorHandle | undefined;
afterEach(async () => {
  await world?.close();
  await emu?.close();
  world = undefined;
  emu = undefined;
});

test('1. repeated kill -9 of random workers during a batch: every job ends once, the batch finishes', async () => {
  const n = count(300, 90);
  const kills = count(25, 8);
  const cap = 10;
  emu = await startDeepgramEmulator({ keys: { [KEY]: 'project-1' }, serviceTimeMs: { prerecorded: 4000 } });
  world = await deepgramWorld(emu, cap);
  await world.upload('kill/', files(n));
  const startedAt = Date.now();
  const { batchId } = await world.enqueue({ source: `s3://${world.bucket}/kill/`, provider: 'deepgram', model: 'nova-3' });
  let killed = 0;
  let done = false;
  const killer = (async () => {
    while (!done && killed < kills) {
      await sleep(count(5000, 3000) + Math.random() * 3000);
      if (done) break;
      await world!.killRandomWorker();
      killed += 1;
    }
  })();
  const { finishedAt } = await world.waitForBatch(batchId);
  done = true;
  await killer;
  const f = await world.audit(batchId, { cap, maxInFlight: emu.concurrency.maxConcurrent('project-1/prerecorded'), startedAt, finishedAt });
  await recordFigures('1-kill-workers-batch', f);
  expect(killed).toBeGreaterThanOrEqual(count(20, 5));
  // A job whose worker died in all of its attempts ends WORKER_LOST, in the books like any other end.
  expectClean(f, ['WORKER_LOST']);
});

test('3. Redis kill -9 and a restart on the same AOF after 30–60 s: no job fails, nothing is transcribed twice', async () => {
  const n = count(150, 60);
  const cap = 20;
  emu = await startDeepgramEmulator({ keys: { [KEY]: 'project-1' }, serviceTimeMs: { prerecorded: 3000 } });
  world = await deepgramWorld(emu, cap);
  await world.upload('redis/', files(n));
  const startedAt = Date.now();
  const { batchId } = await world.enqueue({ source: `s3://${world.bucket}/redis/`, provider: 'deepgram', model: 'nova-3' });
  await sleep(4000); // the batch is under way: sessions in flight
  await world.redisOutage(count(60_000, 30_000));
  const { finishedAt } = await world.waitForBatch(batchId);
  const f = await world.audit(batchId, { cap, maxInFlight: emu.concurrency.maxConcurrent('project-1/prerecorded'), startedAt, finishedAt });
  await recordFigures('3-redis-outage', f);
  expectClean(f);
  expect(f.completed).toBe(n);
  // Re-transcribe no file: the provider answered each file once.
  expect(emu.requests.filter((r) => r.status === 200).length).toBe(n);
});

test('4. S3 server down for 30–60 s mid-batch: no job fails, no transcript is thrown away', async () => {
  const n = count(150, 60);
  const cap = 20;
  emu = await startDeepgramEmulator({ keys: { [KEY]: 'project-1' }, serviceTimeMs: { prerecorded: 3000 } });
  world = await deepgramWorld(emu, cap);
  await world.upload('s3/', files(n));
  const startedAt = Date.now();
  const { batchId } = await world.enqueue({ source: `s3://${world.bucket}/s3/`, provider: 'deepgram', model: 'nova-3' });
  await sleep(4000);
  await world.s3Outage(count(60_000, 30_000));
  const { finishedAt } = await world.waitForBatch(batchId);
  const f = await world.audit(batchId, { cap, maxInFlight: emu.concurrency.maxConcurrent('project-1/prerecorded'), startedAt, finishedAt });
  await recordFigures('4-s3-outage', f);
  expectClean(f);
  expect(f.completed).toBe(n);
  expect(emu.requests.filter((r) => r.status === 200).length).toBe(n);
});

test('5. provider faults: 429 storm, 5xx, never answers, socket drops, early 401/402/429 during the upload', async () => {
  const cap = 10;
  emu = await startDeepgramEmulator({ keys: { [KEY]: 'project-1' }, serviceTimeMs: { prerecorded: 1000 }, retryAfterSeconds: 1 });
  world = await deepgramWorld(emu, cap, { PROVIDER_TIMEOUT_MS: '4000' });
  const n = count(40, 12);
  const phases: Array<{ name: string; faults: string[]; expect: (f: ChaosFigures) => void }> = [
    { name: '429-storm', faults: [`429-storm:${count(60, 20)}`], expect: (f) => expect(f.completed).toBe(n) },
    { name: '5xx', faults: [`5xx:${count(10, 4)}`], expect: (f) => expect(f.completed).toBe(n) },
    { name: 'never-answer', faults: ['never-answer:3'], expect: (f) => expect(f.completed).toBe(n) },
    { name: 'drop-after', faults: ['drop-after=0.5:3'], expect: (f) => expect(f.completed).toBe(n) },
    // A wrong key or an unpaid account: every job fails at once with the provider's own reason, in one attempt.
    { name: 'early-401', faults: ['early=401'], expect: (f) => expect(f.failedByCode).toEqual({ PROVIDER_AUTH: n }) },
    { name: 'early-402', faults: ['early=402'], expect: (f) => expect(f.failedByCode).toEqual({ PROVIDER_PAYMENT_REQUIRED: n }) },
    { name: 'early-429', faults: [`early=429:${count(20, 6)}`], expect: (f) => expect(f.completed).toBe(n) },
  ];
  for (const phase of phases) {
    await world.upload(`${phase.name}/`, files(n));
    await fetch(`${emu.url}/_emulator/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ faults: phase.faults }) });
    world.fault(phase.name);
    const startedAt = Date.now();
    const { batchId, jobIds } = await world.enqueue({ source: `s3://${world.bucket}/${phase.name}/`, out: `s3://${world.bucket}/out-${phase.name}/`, provider: 'deepgram', model: 'nova-3' });
    const { finishedAt } = await world.waitForBatch(batchId);
    await fetch(`${emu.url}/_emulator/faults`, { method: 'DELETE' });
    const f = await world.audit(batchId, { cap, maxInFlight: emu.concurrency.maxConcurrent('project-1/prerecorded'), startedAt, finishedAt });
    await recordFigures(`5-provider-${phase.name}`, f);
    expect({ phase: phase.name, problems: f.problems }).toEqual({ phase: phase.name, problems: [] });
    phase.expect(f);
    // Rate limits spend no attempt, and an auth or payment refusal is decided in the first: one
    // attempt each (BullMQ counts the attempt that completed or failed the job).
    if (phase.name.includes('429') || phase.name.startsWith('early-40')) {
      for (const id of jobIds) {
        const job = await world.fleet.getJob(id);
        expect({ id, attempts: (job?.attemptsMade ?? 0) + (job?.stalledCounter ?? 0) }).toEqual({ id, attempts: 1 });
      }
    }
  }
});
