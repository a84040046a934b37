/**
 * `scribe plan` (issue 15), the compiled CLI against the test Redis + S3 server:
 * - exact mode over real files of every container the fleet decodes: each file's duration as decoded,
 *   within 1 %, their sum the plan's total; files whose outputs exist counted done, not measured;
 *   each choice's cost and time follow from the price table and the caps in force;
 * - sampled mode over a 2 000-file prefix: the 95 % interval holds the true total;
 * - `scribe enqueue --plan <id>` runs the plan's request (an in-process worker completes it), and the
 *   refusals: unknown plan, flags beside --plan, a choice the catalogue refuses.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { capBucketsFromConfig, choiceFigures, priceFor, speedFor } from '@scribe-fleet/core';
import { batchServiceOver, type BatchServices } from '@scribe-fleet/core/adapters/bullmq/open-services';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { openPlanReader } from '@scribe-fleet/core/adapters/plan-services';
import { createDeps, startWorker, type RunningWorker } from '@scribe-fleet/worker';
import { EXIT } from '../../apps/producer/src/cli';
import { runCli } from '../helpers/processes';
import { childEnv, testStorage, uniqueBucket } from '../helpers/env';
import { testConfig } from '../helpers/fleet';

jest.setTimeout(300_000);

const config = testConfig({ LOCAL_CONCURRENCY: '2', JOB_ATTEMPTS: '1', BUCKET_DISCOVERY_MS: '200' });
const storage = testStorage();
const bucket = uniqueBucket('plan');
const dir = mkdtempSync(join(tmpdir(), 'scribe-plan-'));
const scribe = (args: string[]) => runCli(args, childEnv(config, {}));
let worker: RunningWorker | undefined;
let redis: Redis;
let fleet: FleetQueues;
let services: BatchServices;

/** Container files made by ffmpeg from a tone of `seconds`: [name, ffmpeg output args]. */
const CONTAINERS: Array<[string, number, string[]]> = [
  ['a.wav', 2.0, ['-c:a', 'pcm_s16le']],
  ['b.flac', 3.5, ['-c:a', 'flac']],
  ['c.mp3', 4.2, ['-c:a', 'libmp3lame', '-q:a', '4']],
  ['d-cbr.mp3', 2.4, ['-c:a', 'libmp3lame', '-b:a', '64k', '-write_xing', '0']],
  ['e.m4a', 2.7, ['-c:a', 'aac', '-b:a', '64k']],
  ['f-faststart.m4a', 1.9, ['-c:a', 'aac', '-b:a', '64k', '-movflags', '+faststart']],
  ['g.ogg', 3.1, ['-c:a', 'libopus', '-b:a', '32k']],
  ['h.webm', 2.2, ['-c:a', 'libopus', '-b:a', '32k']],
];

/** The duration ffmpeg decodes a file to (16 kHz mono s16le samples ÷ 16 000). */
function decodedSeconds(path: string): number {
  const pcm = execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-i', path, '-f', 's16le', '-ac', '1', '-ar', '16000', '-'], { maxBuffer: 1 << 28 });
  return pcm.length / 32000;
}

const truth: Record<string, number> = {};

beforeAll(async () => {
  await storage.ensureBucket(bucket);
  for (const [name, seconds, args] of CONTAINERS) {
    const p = join(dir, name);
    execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=44100:duration=${seconds}`, ...args, p]);
    truth[name] = decodedSeconds(p);
    await storage.put(bucket, `mix/${name}`, readFileSync(p));
  }
  // A file whose outputs exist: counted done, not measured.
  await storage.put(bucket, 'mix/done.wav', readFileSync(join(dir, 'a.wav')));
  await storage.put(bucket, 'out/done.wav.json', '{}');
  redis = new Redis(config.REDIS_URL);
  fleet = new FleetQueues(config, redis);
  services = batchServiceOver({ config, redis, storage, fleet });
});

afterAll(async () => {
  await worker?.close();
  await services?.close();
  await fleet?.close();
  redis?.disconnect();
  storage.destroy();
});

it('exact: every container measured within 1 % of its decoded duration; cost and time follow from the price table and caps', async () => {
  const res = await scribe(['plan', `s3://${bucket}/mix/`, '--out', `s3://${bucket}/out/`, '--exact', '--provider', 'deepgram', '--compare', 'openai', '--compare', 'assemblyai::stream', '--compare', 'local', '--json']);
  expect({ code: res.code, stderr: res.stderr }).toEqual({ code: EXIT.OK, stderr: '' });
  const plan = JSON.parse(res.stdout);
  expect(plan.files).toEqual({ listed: CONTAINERS.length + 1, ignored: 0, done: 1, refused: 0, toDo: CONTAINERS.length, bytes: expect.any(Number) });
  expect(plan.audio).toMatchObject({ method: 'exact', measured: CONTAINERS.length, unreadable: 0 });
  const total = Object.values(truth).reduce((a, b) => a + b, 0);
  console.log(`[plan] exact: ${plan.audio.seconds.estimate.toFixed(3)} s measured vs ${total.toFixed(3)} s decoded; ${plan.audio.fromHeader} of ${CONTAINERS.length} from headers`);
  expect(Math.abs(plan.audio.seconds.estimate - total) / total).toBeLessThan(0.01);
  expect(plan.audio.seconds.low).toBe(plan.audio.seconds.estimate);
  expect(plan.audio.longestSeconds).toBeCloseTo(Math.max(...Object.values(truth)), 1);

  // Each choice's figures are the table's and the caps' (the same pure functions, fed independently).
  const caps = capBucketsFromConfig(config);
  expect(plan.choices.map((c: { provider: string; model: string; mode: string }) => `${c.provider}/${c.model}/${c.mode}`)).toEqual(['deepgram/nova-3/batch', 'openai/whisper-1/batch', 'assemblyai/universal-streaming-english/stream', 'local/pocketsphinx-en-us/batch']);
  for (const c of plan.choices) {
    const r = caps.of(c);
    const price = priceFor(c);
    expect({ cap: c.cap, perWorker: c.perWorker, bucket: c.bucket }).toEqual({ cap: r.cap, perWorker: r.perWorker, bucket: r.key });
    const want = choiceFigures({ mode: c.mode, files: CONTAINERS.length, audioSeconds: plan.audio.seconds, longestSeconds: plan.audio.longestSeconds, cap: r.cap, perWorker: r.perWorker, speed: speedFor(c.provider, c.mode), price });
    expect({ costUsd: c.costUsd, wallSeconds: c.wallSeconds, workers: c.workers }).toEqual(want);
    expect(c.costUsd.estimate).toBeCloseTo((total / 60) * price!.usdPerMinute, 2);
  }
  // Streams run at real time: the stream choice cannot end before its longest file.
  expect(plan.choices[2].wallSeconds.estimate).toBeGreaterThanOrEqual(plan.audio.longestSeconds);

  // Per file: each container alone (its plan is exact, one file).
  for (const [name] of CONTAINERS) {
    const one = await scribe(['plan', `s3://${bucket}/mix/${name}`, '--out', `s3://${bucket}/out/`, '--json']);
    const p = JSON.parse(one.stdout);
    const err = Math.abs(p.audio.seconds.estimate - truth[name]!) / truth[name]!;
    console.log(`[plan] ${name}: ${p.audio.seconds.estimate} s vs decoded ${truth[name]!.toFixed(3)} s (${(err * 100).toFixed(2)} %), ${p.audio.fromHeader ? 'header' : 'probe'}`);
    expect(err).toBeLessThan(0.01);
  }
});

it('the TTY table names each choice, its price source and how to run the plan', async () => {
  const res = await scribe(['plan', `s3://${bucket}/mix/`, '--out', `s3://${bucket}/out/`, '--provider', 'deepgram', '--compare', 'assemblyai::stream']);
  expect({ code: res.code, stderr: res.stderr }).toEqual({ code: EXIT.OK, stderr: '' });
  expect(res.stdout).toMatch(/^plan plan_[0-9a-f]{16}: /);
  expect(res.stdout).toMatch(/deepgram nova-3 batch/);
  expect(res.stdout).toMatch(/assemblyai universal-streaming-english stream/);
  expect(res.stdout).toMatch(/price deepgram nova-3 batch: \$0\.0043\/min per channel \(deepgram\.com/);
  expect(res.stdout).toMatch(/run it: scribe enqueue --plan plan_[0-9a-f]{16} --choice N/);
});

it('sampled: a 2 000-file prefix, 200 measured, and the 95 % interval holds the true total', async () => {
  // Files of 1 to 60 s of silence (FLAC: small), durations drawn skewed from a fixed seed.
  const lengths = [1, 2, 3, 5, 8, 13, 21, 34, 60];
  const bodies = lengths.map((d) => {
    const p = join(dir, `s${d}.flac`);
    execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'anullsrc=r=16000:cl=mono', '-t', String(d), '-c:a', 'flac', p]);
    return readFileSync(p);
  });
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const picks = Array.from({ length: 2000 }, () => Math.floor(rand() ** 2 * lengths.length));
  const total = picks.reduce((a, i) => a + lengths[i]!, 0);
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      for (let i = next++; i < picks.length; i = next++) await storage.put(bucket, `many/f${String(i).padStart(5, '0')}.flac`, bodies[picks[i]!]!);
    }),
  );
  const res = await scribe(['plan', `s3://${bucket}/many/`, '--out', `s3://${bucket}/out-many/`, '--sample', '200', '--seed', '7', '--json']);
  expect(res.code).toBe(EXIT.OK);
  const plan = JSON.parse(res.stdout);
  const s = plan.audio.seconds;
  console.log(`[plan] sampled: ${s.estimate.toFixed(0)} s (${s.low.toFixed(0)}–${s.high.toFixed(0)}) vs true ${total} s, ${plan.audio.fromHeader} of 200 from headers`);
  expect(plan.files.toDo).toBe(2000);
  expect(plan.audio).toMatchObject({ method: 'sampled', measured: 200, seed: 7 });
  expect(s.low).toBeLessThanOrEqual(total);
  expect(s.high).toBeGreaterThanOrEqual(total);
  expect(s.high - s.low).toBeLessThan(0.5 * total); // an interval, not a shrug
  // The README's example table is this plan's.
  const table = await scribe(['plan', `s3://${bucket}/many/`, '--out', `s3://${bucket}/out-many/`, '--sample', '200', '--seed', '7', '--provider', 'deepgram', '--compare', 'openai', '--compare', 'assemblyai::stream', '--compare', 'local']);
  expect(table.stdout).toMatch(/95 % interval; sampled 200 of 2,000 files, seed 7/);
  console.log(`[plan] table:\n${table.stdout}`);
  // The same seed draws the same sample.
  const again = JSON.parse((await scribe(['plan', `s3://${bucket}/many/`, '--out', `s3://${bucket}/out-many/`, '--sample', '200', '--seed', '7', '--json'])).stdout);
  expect(again.audio.seconds).toEqual(s);
});

it('enqueue --plan runs the plan (the worker completes it); refusals have their codes', async () => {
  const made = JSON.parse((await scribe(['plan', `s3://${bucket}/mix/`, '--out', `s3://${bucket}/out-run/`, '--format', 'txt', '--compare', 'deepgram', '--json'])).stdout);
  expect(made.request.formats).toEqual(['txt']);
  worker = startWorker(config, createDeps(config));
  const enq = await scribe(['enqueue', '--plan', made.planId, '--choice', '1', '--json']);
  expect(enq.code).toBe(EXIT.OK);
  const summary = JSON.parse(enq.stdout);
  // out-run/ holds no outputs yet: done.wav runs too.
  expect(made.files).toMatchObject({ toDo: CONTAINERS.length + 1, done: 0 });
  expect(summary).toMatchObject({ listed: CONTAINERS.length + 1, added: CONTAINERS.length + 1 });
  const watch = await scribe(['watch', summary.batchId, '--json', '--interval', '200']);
  expect(watch.code).toBe(EXIT.OK);
  const { batch, progress } = await services.service.getBatch(summary.batchId);
  expect(batch).toMatchObject({ provider: 'local', source: `s3://${bucket}/mix/` });
  expect(batch.counts.completed).toBe(CONTAINERS.length + 1);
  // The batch remembers the plan it runs; beside it, the plan's exact audio is what the workers decoded (1 %).
  expect(batch.plan).toEqual({ id: made.planId, choice: 1 });
  const beside = await openPlanReader({ config, redis }).beside(batch, progress);
  expect(beside).toMatchObject({ planId: made.planId, choice: 1, provider: 'local', method: 'exact', sameRouting: true, files: { planned: CONTAINERS.length + 1, batch: CONTAINERS.length + 1 } });
  expect(beside!.audioSeconds.projected).toBe(batch.audioSecondsDone);
  expect(Math.abs(batch.audioSecondsDone / made.audio.seconds.estimate - 1)).toBeLessThan(0.01);
  expect(beside!.audioSeconds.versus).toBe('within');

  const unknown = await scribe(['enqueue', '--plan', 'plan_0000000000000000', '--json']);
  expect(unknown.code).toBe(EXIT.NOT_FOUND);
  expect(JSON.parse(unknown.stdout).error.code).toBe('PLAN_NOT_FOUND');
  const flagBeside = await scribe(['enqueue', '--plan', made.planId, '--provider', 'deepgram']);
  expect(flagBeside.code).toBe(EXIT.BAD_INPUT);
  expect(flagBeside.stderr).toMatch(/drop --provider/);
  const badChoice = await scribe(['enqueue', '--plan', made.planId, '--choice', '3']);
  expect(badChoice.code).toBe(EXIT.BAD_INPUT);
  const refused = await scribe(['plan', `s3://${bucket}/mix/`, '--out', `s3://${bucket}/out/`, '--compare', 'openai::stream', '--json']);
  expect(refused.code).toBe(EXIT.BAD_INPUT);
  expect(refused.stderr + refused.stdout).toMatch(/UNSUPPORTED_COMBINATION/);
});
