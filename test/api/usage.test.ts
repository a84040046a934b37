/**
 * Usage accounting (issue 15), end to end on the real services: batches run by a real worker (the
 * local provider, and Deepgram through its emulator in batch and stream mode), then
 * - GET /v1/usage by=day and by=batch: audio seconds equal the sum of the jobs' durations, sessions
 *   and attempts as the jobs ran them, jobs completed and failed, the cost = audio minutes × the
 *   PRICES_FILE fixture's price; filters, totals, refusals;
 * - `scribe usage` (the compiled CLI): the same answer as JSON, and its table;
 * - each batch summary (`<out>_reports/<id>.summary.json`) states audioHours and estimatedCostUsd;
 * - every Deepgram request of a batch carries `tag=<batchId>` (pre-recorded and live, as the
 *   emulator received them), and a request without a batch carries none.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dayMinus, parseS3Url, usageDay, type UsageRow } from '@scribe-fleet/core';
import { DeepgramProvider } from '@scribe-fleet/core/adapters/providers/deepgram';
import { systemClock } from '@scribe-fleet/core/adapters/system-clock';
import { startDeepgramEmulator, type DeepgramEmulatorHandle } from '@scribe-fleet/emulators';
import { createDeps, startWorker, type RunningWorker } from '@scribe-fleet/worker';
import { EXIT } from '../../apps/producer/src/cli';
import { childEnv, uniqueBucket } from '../helpers/env';
import { readObject } from '../helpers/fleet';
import { runCli } from '../helpers/processes';
import { fileAudioInput } from '../providers/streaming-test-kit';
import { startApi, waitBatch, type ApiHarness } from './harness';

jest.setTimeout(300_000);

const KEY = 'usage-dg-key';
const PRICES_FILE = join(__dirname, 'usage-prices.fixture.json');
const PRICES = JSON.parse(readFileSync(PRICES_FILE, 'utf8')) as Array<{ provider: string; model: string; mode: string; usdPerMinute: number; source: string }>;
const priceOf = (provider: string, mode: string) => PRICES.find((p) => p.provider === provider && p.mode === mode)!.usdPerMinute;

const bucket = uniqueBucket('usage');
const dir = mkdtempSync(join(tmpdir(), 'scribe-usage-'));
let api: ApiHarness;
let dg: DeepgramEmulatorHandle;
let worker: RunningWorker | undefined;
let fromDay: string;
let toDay: string;
/** Batch id → what the books say of it, once finished. */
const batches: Record<'local' | 'dgBatch' | 'dgStream', { id: string; record: any; durations: number[]; failed: number }> = {} as never;

function tone(name: string, seconds: number): string {
  const p = join(dir, name);
  execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', `sine=frequency=300:sample_rate=16000:duration=${seconds}`, '-c:a', 'pcm_s16le', p]);
  return p;
}

async function runBatch(body: Record<string, unknown>): Promise<{ id: string; record: any; durations: number[]; failed: number }> {
  const res = await api.call('POST', '/v1/batches', { body });
  expect([res.status, res.body.error]).toEqual([201, undefined]);
  await worker!.discover();
  const record = await waitBatch(api, res.body.batchId, 120_000);
  const jobs = await api.call('GET', `/v1/batches/${res.body.batchId}/jobs?limit=500`);
  const results = jobs.body.jobs.map((j: any) => j.result);
  return {
    id: res.body.batchId,
    record,
    durations: results.filter((r: any) => r.state === 'completed').map((r: any) => r.duration as number),
    failed: results.filter((r: any) => r.state === 'failed').length,
  };
}

/** GET /v1/usage over the days the test ran on, with more parameters; must answer 200. */
async function usage(query: string): Promise<any> {
  const res = await api.call('GET', `/v1/usage?from=${fromDay}&to=${toDay}&${query}`);
  expect([res.status, res.body.error]).toEqual([200, undefined]);
  return res.body;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
/** Rows of one (provider, mode), summed (a test that runs over UTC midnight has two days of them). */
function figures(rows: UsageRow[], provider: string, mode: string) {
  const mine = rows.filter((r) => r.provider === provider && r.mode === mode);
  return {
    audioSeconds: sum(mine.map((r) => r.audioSeconds)),
    sessions: sum(mine.map((r) => r.sessions)),
    attempts: sum(mine.map((r) => r.attempts)),
    completed: sum(mine.map((r) => r.completed)),
    failed: sum(mine.map((r) => r.failed)),
    estimatedCostUsd: sum(mine.map((r) => r.estimatedCostUsd ?? NaN)),
  };
}

beforeAll(async () => {
  dg = await startDeepgramEmulator({ keys: { [KEY]: 'project-usage' } });
  api = await startApi({ PRICES_FILE, DEEPGRAM_API_KEY: KEY, DEEPGRAM_URL: dg.url, LOCAL_CONCURRENCY: '4', JOB_ATTEMPTS: '2' });
  await api.storage.ensureBucket(bucket);
  for (const [name, seconds] of [
    ['a.wav', 2],
    ['b.wav', 3.5],
    ['c.wav', 4.25],
  ] as const)
    await api.storage.put(bucket, `local/${name}`, readFileSync(tone(name, seconds)));
  // Not audio: the job fails for good (DECODE_FAILED, unrecoverable) in its one session.
  await api.storage.put(bucket, 'local/broken.wav', Buffer.from('this is not a wav file at all, just text bytes'.repeat(20)));
  await api.storage.put(bucket, 'dg/d.wav', readFileSync(tone('d.wav', 2.5)));
  worker = startWorker(api.config, createDeps(api.config));
  fromDay = usageDay(Date.now());
  batches.local = await runBatch({ source: `s3://${bucket}/local/`, out: `s3://${bucket}/out-local/` });
  batches.dgBatch = await runBatch({ source: `s3://${bucket}/dg/`, out: `s3://${bucket}/out-dg-batch/`, provider: 'deepgram', mode: 'batch', account: 'proj-a' });
  batches.dgStream = await runBatch({ source: `s3://${bucket}/dg/`, out: `s3://${bucket}/out-dg-stream/`, provider: 'deepgram', mode: 'stream', account: 'proj-a' });
  toDay = usageDay(Date.now());
  // The book is written right after each job's end is recorded: wait (bounded) until it holds them all.
  const ends = 4 + 1 + 1;
  for (const t0 = Date.now(); ; ) {
    const t = (await usage('by=day')).totals;
    if (t.completed + t.failed >= ends || Date.now() - t0 > 10_000) break;
    await new Promise((r) => setTimeout(r, 100));
  }
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
  await dg?.close();
});

it('the batches ran as the test expects (3 completed + 1 failed locally, 1 each on Deepgram)', () => {
  expect(batches.local.record.counts).toMatchObject({ completed: 3, failed: 1 });
  expect(batches.local.durations.sort((a, b) => a - b)).toEqual([expect.closeTo(2, 1), expect.closeTo(3.5, 1), expect.closeTo(4.25, 1)]);
  expect(batches.dgBatch.record.counts).toMatchObject({ completed: 1, failed: 0 });
  expect(batches.dgStream.record.counts).toMatchObject({ completed: 1, failed: 0 });
});

it('GET /v1/usage by=day: audio seconds are the jobs\' durations, sessions and attempts as run, cost from the price file', async () => {
  const body = await usage('by=day');
  expect(body).toMatchObject({ from: fromDay, to: toDay, by: 'day' });
  for (const r of body.rows) expect(r.day >= fromDay && r.day <= toDay).toBe(true);
  const local = figures(body.rows, 'local', 'batch');
  const localSeconds = sum(batches.local.durations);
  expect(local).toEqual({
    audioSeconds: expect.closeTo(localSeconds, 5),
    // One session and one attempt per job: the broken file fails in its session (decoding is part of it).
    sessions: 4,
    attempts: 4,
    completed: 3,
    failed: 1,
    estimatedCostUsd: expect.closeTo((localSeconds / 60) * priceOf('local', 'batch'), 5),
  });
  expect(body.rows.find((r: UsageRow) => r.provider === 'local')).toMatchObject({ model: 'pocketsphinx-en-us', account: 'default', usdPerMinute: priceOf('local', 'batch') });
  for (const [name, mode] of [
    ['dgBatch', 'batch'],
    ['dgStream', 'stream'],
  ] as const) {
    const secs = sum(batches[name].durations);
    expect(secs).toBeGreaterThan(2);
    expect(figures(body.rows, 'deepgram', mode)).toEqual({
      audioSeconds: expect.closeTo(secs, 5),
      sessions: 1,
      attempts: 1,
      completed: 1,
      failed: 0,
      estimatedCostUsd: expect.closeTo((secs / 60) * priceOf('deepgram', mode), 5),
    });
    expect(body.rows.find((r: UsageRow) => r.provider === 'deepgram' && r.mode === mode)).toMatchObject({ model: 'nova-3', account: 'proj-a' });
  }
  const all = [...batches.local.durations, ...batches.dgBatch.durations, ...batches.dgStream.durations];
  expect(body.totals).toMatchObject({ sessions: 6, attempts: 6, completed: 5, failed: 1, cancelled: 0, unpriced: 0, audioSeconds: expect.closeTo(sum(all), 5) });
  expect(body.totals.estimatedCostUsd).toBeCloseTo(sum(body.rows.map((r: UsageRow) => r.estimatedCostUsd!)), 6);
});

it('GET /v1/usage by=batch: a row per batch, its audio seconds the books\' audioSecondsDone', async () => {
  const body = await usage('by=batch');
  expect(body.by).toBe('batch');
  expect(new Set(body.rows.map((r: any) => r.batchId))).toEqual(new Set([batches.local.id, batches.dgBatch.id, batches.dgStream.id]));
  for (const [name, provider, mode, sessions] of [
    ['local', 'local', 'batch', 4],
    ['dgBatch', 'deepgram', 'batch', 1],
    ['dgStream', 'deepgram', 'stream', 1],
  ] as const) {
    const b = batches[name];
    const rows = body.rows.filter((r: any) => r.batchId === b.id);
    const f = figures(rows, provider, mode);
    expect(f).toEqual({
      audioSeconds: expect.closeTo(b.record.audioSecondsDone, 5),
      sessions,
      attempts: sessions,
      completed: b.durations.length,
      failed: b.failed,
      estimatedCostUsd: expect.closeTo((b.record.audioSecondsDone / 60) * priceOf(provider, mode), 5),
    });
    expect(f.audioSeconds).toBeCloseTo(sum(b.durations), 5);
  }
  // The same usage read two ways has the same totals.
  const byDay = await usage('by=day');
  expect(body.totals).toEqual(byDay.totals);
});

it('filters, and refusals with their codes', async () => {
  const dgOnly = await usage('by=batch&provider=deepgram');
  expect(dgOnly.rows.map((r: any) => r.batchId).sort()).toEqual([batches.dgBatch.id, batches.dgStream.id].sort());
  expect((await usage('by=day&provider=deepgram&model=nova-3&account=proj-a')).totals.completed).toBe(2);
  expect((await usage('by=day&account=nobody')).rows).toEqual([]);
  // A day before the test holds nothing of it.
  const before = await api.call('GET', `/v1/usage?from=${dayMinus(fromDay, 3)}&to=${dayMinus(fromDay, 1)}`);
  expect([before.status, before.body.rows]).toEqual([200, []]);
  // Defaults: by day, the last 30 days up to today.
  const defaults = await api.call('GET', '/v1/usage');
  expect(defaults.body).toMatchObject({ by: 'day', to: usageDay(Date.now()), from: dayMinus(usageDay(Date.now()), 29) });
  for (const [q, code] of [
    ['from=2026-12-09&to=2026-12-08', 'INVALID_REQUEST'],
    ['from=2025-01-01&to=2026-01-02', 'INVALID_REQUEST'],
    ['from=2026-02-30&to=2026-03-01', 'INVALID_REQUEST'],
    ['from=yesterday', 'INVALID_REQUEST'],
    ['by=week', 'INVALID_REQUEST'],
    ['provider=nope', 'UNKNOWN_PROVIDER'],
    ['account=a%20b', 'INVALID_REQUEST'],
  ] as const) {
    const res = await api.call('GET', `/v1/usage?${q}`);
    expect({ q, status: res.status, code: res.body.error?.code }).toEqual({ q, status: 400, code });
  }
  expect((await api.call('GET', '/v1/usage', { auth: null })).status).toBe(401);
});

it('scribe usage: the API\'s answer as JSON, a table otherwise, bad input exit 2', async () => {
  const env = childEnv(api.config, { PRICES_FILE });
  const json = await runCli(['usage', '--by', 'batch', '--from', fromDay, '--to', toDay, '--json'], env);
  expect({ code: json.code, stderr: json.stderr }).toEqual({ code: EXIT.OK, stderr: '' });
  expect(JSON.parse(json.stdout)).toEqual(await usage('by=batch'));
  const table = await runCli(['usage', '--by', 'batch', '--from', fromDay, '--to', toDay], env);
  expect(table.code).toBe(EXIT.OK);
  console.log(`[usage] table:\n${table.stdout}`);
  const lines = table.stdout.split('\n');
  expect(lines[0]).toBe(`usage ${fromDay} … ${toDay} by batch`);
  expect(lines.find((l) => l.startsWith('batch '))).toMatch(/provider\s+model\s+mode\s+account\s+audio\s+sessions\s+attempts\s+completed\s+failed\s+cost \(est\.\)/);
  const localLine = lines.find((l) => l.startsWith(batches.local.id))!;
  expect(localLine).toMatch(new RegExp(`^${batches.local.id}\\s+local\\s+pocketsphinx-en-us\\s+batch\\s+default\\s+\\d+\\.\\d s\\s+4\\s+4\\s+3\\s+1\\s+\\$\\d+\\.\\d{4}$`));
  expect(lines.find((l) => l.startsWith(batches.dgStream.id))).toMatch(/deepgram\s+nova-3\s+stream\s+proj-a/);
  expect(lines.find((l) => l.startsWith('total'))).toMatch(/\s6\s+6\s+5\s+1\s+\$\d+\.\d{4}$/);
  const filtered = JSON.parse((await runCli(['usage', '--provider', 'deepgram', '--from', fromDay, '--to', toDay, '--json'], env)).stdout);
  expect(filtered.rows.every((r: UsageRow) => r.provider === 'deepgram')).toBe(true);
  expect(filtered.totals.completed).toBe(2);
  const bad = await runCli(['usage', '--from', '2026-13-01', '--json'], env);
  expect(bad.code).toBe(EXIT.BAD_INPUT);
  expect(JSON.parse(bad.stdout).error.code).toBe('INVALID_REQUEST');
  const badBy = await runCli(['usage', '--by', 'week'], env);
  expect(badBy.code).toBe(EXIT.BAD_INPUT);
});

it('each batch summary states its audio hours and estimated cost from the price file', async () => {
  for (const [name, provider, mode] of [
    ['local', 'local', 'batch'],
    ['dgBatch', 'deepgram', 'batch'],
    ['dgStream', 'deepgram', 'stream'],
  ] as const) {
    const b = batches[name];
    const loc = parseS3Url(b.record.report.replace(/\.jsonl$/, '.summary.json'));
    const summary = JSON.parse((await readObject(api.storage, loc.bucket, loc.key)).toString('utf8'));
    const seconds = sum(b.durations);
    expect(summary.audioSecondsDone).toBeCloseTo(seconds, 5);
    expect(summary.audioHours).toBeCloseTo(seconds / 3600, 6);
    expect(summary.estimatedCostUsd).toBeCloseTo((seconds / 60) * priceOf(provider, mode), 6);
    expect(summary.estimatedCostUsd).toBeGreaterThan(0);
    expect(summary.price).toMatchObject({ usdPerMinute: priceOf(provider, mode), source: PRICES.find((p) => p.provider === provider && p.mode === mode)!.source });
  }
});

it('every Deepgram request of a batch carries tag=<batchId> (pre-recorded and live); one without a batch carries none', async () => {
  const rest = dg.requests.filter((r) => r.status === 200);
  expect(rest.map((r) => r.tags)).toEqual([[batches.dgBatch.id]]);
  const live = dg.sessions.filter((s) => s.handshakeStatus === undefined);
  expect(live.map((s) => s.tags)).toEqual([[batches.dgStream.id]]);
  // The provider client alone, as a job without a batch calls it: no tag.
  const client = new DeepgramProvider({ apiKey: KEY, baseUrl: dg.url });
  await client.transcribe({ mode: 'batch', model: 'nova-3', options: {}, audio: fileAudioInput(join(dir, 'd.wav')) }, { signal: new AbortController().signal, clock: systemClock });
  const last = dg.requests[dg.requests.length - 1]!;
  expect([last.status, last.tags]).toEqual([200, []]);
  // A tag of the job's own options is kept beside the batch's.
  await client.transcribe({ mode: 'batch', model: 'nova-3', options: { tag: 'mine' }, audio: fileAudioInput(join(dir, 'd.wav')), tag: batches.dgBatch.id }, { signal: new AbortController().signal, clock: systemClock });
  expect(dg.requests[dg.requests.length - 1]!.tags).toEqual(['mine', batches.dgBatch.id]);
});
