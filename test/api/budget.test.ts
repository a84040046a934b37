/**
 * Budgets (issue 15) through the HTTP API with a real in-process worker, Redis and S3 server: a batch
 * with `maxAudioHours` admits files while their audio (spent plus running) fits, never cuts a session
 * that has started, shows `paused: budget` once a file would pass the limit, and after
 * `POST /v1/batches/{id}/resume` with a raised limit completes with every file exactly once. The
 * files all say the same sentence in the same voice, so each holds the same audio `d` and the limit
 * 2.5 d admits exactly two of five, whichever two start first.
 */
import { createDeps, startWorker, type RunningWorker } from '@scribe-fleet/worker';
import { uniqueBucket } from '../helpers/env';
import { readObject, sampleFiles, uploadSamples } from '../helpers/fleet';
import { registerDashboard } from '../../apps/producer/src/api/dashboard';
import { startApi, type ApiHarness } from './harness';

jest.setTimeout(240_000);

const bucket = uniqueBucket('api-budget');
const TEXT = 'the quick brown fox jumps over the lazy dog near the river bank';
const FILES = 5;
let api: ApiHarness;
let worker: RunningWorker | undefined;
let d = 0;

beforeAll(async () => {
  const samples = await sampleFiles(Array.from({ length: FILES }, (_, i) => ({ name: `same-${i}.wav`, voice: 'kal16' as const, format: 'wav' as const, text: TEXT })));
  // Three jobs at a time: two are admitted and stream (paced at real time) while the third is refused.
  api = await startApi({ LOCAL_CONCURRENCY: '3', JOB_ATTEMPTS: '2' }, [registerDashboard]);
  await uploadSamples(api.storage, bucket, 'in/', samples);
  // The audio of one file, from its WAV header: 16-bit PCM, so bytes after the 44-byte header / byte rate.
  const wav = await readObject(api.storage, bucket, 'in/same-0.wav');
  d = (wav.length - 44) / wav.readUInt32LE(28);
  expect(d).toBeGreaterThan(2);
  worker = startWorker(api.config, createDeps(api.config));
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
});

/**
 * Poll the batch until `done(batch)`, bounded by progress: give up only when the batch's record has
 * not changed for `idleMs` (a slow machine that keeps moving is waited for).
 */
async function until(batchId: string, done: (b: any) => boolean, idleMs = 60_000): Promise<any> {
  let seen = '';
  let changed = Date.now();
  for (;;) {
    await worker!.discover();
    const b = (await api.call('GET', `/v1/batches/${batchId}`)).body;
    if (done(b)) return b;
    const now = JSON.stringify({ counts: b.counts, paused: b.paused, budget: b.budget, status: b.status });
    if (now !== seen) {
      seen = now;
      changed = Date.now();
    } else if (Date.now() - changed > idleMs) throw new Error(`batch ${batchId} stopped moving: ${JSON.stringify(b)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('a batch budget (maxAudioHours)', () => {
  it('stops admitting at the limit without cutting a session, shows paused: budget, and completes after resume with every file once', async () => {
    const limitHours = (2.5 * d) / 3600;
    const r = await api.call('POST', '/v1/batches', { body: { source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/`, mode: 'stream', maxAudioHours: limitHours } });
    expect({ status: r.status, body: r.status === 201 ? 'created' : r.body }).toEqual({ status: 201, body: 'created' });
    const { batchId } = r.body;

    // Paused, with the two admitted files done in full and the other three waiting (none failed).
    const paused = await until(batchId, (b) => b.paused === 'budget' && b.counts.completed === 2 && b.counts.active === 0);
    expect(paused.counts).toMatchObject({ completed: 2, queued: FILES - 2, failed: 0, cancelled: 0 });
    expect(paused.status).toBe('running');
    expect(paused.pausedReason).toMatch(/batch budget/);
    expect(paused.budget.maxAudioHours).toBeCloseTo(limitHours, 6);
    // What was spent is two whole files (no session was cut short), within the limit.
    expect(paused.budget.spentAudioHours * 3600).toBeGreaterThan(2 * d * 0.97);
    expect(paused.budget.spentAudioHours).toBeLessThanOrEqual(limitHours);
    expect(paused.budget.reservedAudioHours).toBeCloseTo(0, 6);
    // The dashboard's view says so too (its batches table renders `outcome`, the reason as a title).
    const fleet = (await api.call('GET', '/v1/fleet')).body;
    expect(fleet.batches.find((b: { id: string }) => b.id === batchId)).toMatchObject({ outcome: 'paused: budget', pausedReason: expect.stringMatching(/batch budget/) });
    const done2 = (await api.call('GET', `/v1/batches/${batchId}/jobs?state=completed`)).body.jobs as Array<{ result: { duration: number } }>;
    for (const j of done2) expect(j.result.duration).toBeGreaterThan(d * 0.97);
    // It stays paused: the refused jobs are not retried into failure (their check comes back after BUDGET_RECHECK_MS).
    await new Promise((res) => setTimeout(res, 2_000));
    expect((await api.call('GET', `/v1/batches/${batchId}`)).body.counts).toMatchObject({ completed: 2, queued: FILES - 2, failed: 0 });

    // Raised: the waiting jobs are promoted and admitted at once (not after the 5-minute recheck).
    const resumed = await api.call('POST', `/v1/batches/${batchId}/resume`, { body: { maxAudioHours: (10 * d) / 3600 } });
    expect(resumed).toMatchObject({ status: 200, body: { promoted: FILES - 2 } });
    expect((await api.call('GET', `/v1/batches/${batchId}`)).body.paused).toBeUndefined();
    const finished = await until(batchId, (b) => b.status === 'finished' && Boolean(b.report));
    expect(finished.counts).toMatchObject({ completed: FILES, failed: 0, queued: 0, active: 0 });
    expect(finished.paused).toBeUndefined();
    expect(finished.budget.spentAudioHours * 3600).toBeGreaterThan(FILES * d * 0.97);

    // Every file exactly once: one report line each, one completed end each, each attempt's first.
    const report = (await readObject(api.storage, bucket, finished.report.replace(`s3://${bucket}/`, ''))).toString('utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(report).toHaveLength(FILES);
    expect(new Set(report.map((l: { key: string }) => l.key)).size).toBe(FILES);
    expect(report.every((l: { status: string }) => l.status === 'completed')).toBe(true);
    for (const l of report) {
      const job = (await api.call('GET', `/v1/jobs/${l.job_id}`)).body;
      // The budget's refusals spent no attempt: every job completed on its first.
      expect(job).toMatchObject({ state: 'completed', attemptsMade: 1 });
    }
  });

  it('refuses a bad limit (400), an unknown batch (404) and new limits beside unlimited (400)', async () => {
    const r = await api.call('POST', '/v1/batches', { body: { source: `s3://${bucket}/in/`, out: `s3://${bucket}/out-bad/`, maxAudioHours: -1 } });
    expect(r.status).toBe(400);
    const zero = await api.call('POST', '/v1/batches/b_20260101-000000_00000000/resume', { body: { maxAudioHours: 0 } });
    expect(zero.status).toBe(400);
    const unknown = await api.call('POST', '/v1/batches/b_20260101-000000_00000000/resume', { body: { maxCost: 5 } });
    expect(unknown).toMatchObject({ status: 404, body: { error: { code: 'BATCH_NOT_FOUND' } } });
    const both = await api.call('POST', '/v1/batches/b_20260101-000000_00000000/resume', { body: { maxCost: 5, unlimited: true } });
    expect(both).toMatchObject({ status: 400, body: { error: { code: 'INVALID_REQUEST' } } });
  });
});

describe('an account budget per UTC day (SCRIBE_BUDGETS)', () => {
  it('admits the account’s files while the day’s book has room, then pauses its batch with the account named', async () => {
    // A second API + worker whose config gives account acct-day 1.5 files of audio a day (hours in the variable).
    const hours = ((1.5 * d) / 3600).toFixed(6);
    const day = await startApi({ LOCAL_CONCURRENCY: '1', JOB_ATTEMPTS: '2', SCRIBE_BUDGETS: `local:acct-day=${hours}h` }, [registerDashboard]);
    const w = startWorker(day.config, createDeps(day.config));
    try {
      const r = await day.call('POST', '/v1/batches', { body: { source: `s3://${bucket}/in/`, out: `s3://${bucket}/out-day/`, account: 'acct-day' } });
      expect(r.status).toBe(201);
      const { batchId } = r.body;
      let seen = '';
      let changed = Date.now();
      let b: any;
      for (;;) {
        await w.discover();
        b = (await day.call('GET', `/v1/batches/${batchId}`)).body;
        if (b.paused === 'budget' && b.counts.completed === 1 && b.counts.active === 0) break;
        const now = JSON.stringify([b.counts, b.paused]);
        if (now !== seen) [seen, changed] = [now, Date.now()];
        else if (Date.now() - changed > 60_000) throw new Error(`stopped moving: ${JSON.stringify(b)}`);
        await new Promise((res) => setTimeout(res, 200));
      }
      expect(b.counts).toMatchObject({ completed: 1, queued: FILES - 1, failed: 0 });
      expect(b.pausedReason).toMatch(/account local:acct-day budget for \d{4}-\d{2}-\d{2}/);
      // The batch has no budget of its own.
      expect(b.budget).toBeUndefined();
      // Another account of the same provider is not held by it.
      const other = await day.call('POST', '/v1/batches', { body: { source: `s3://${bucket}/in/`, out: `s3://${bucket}/out-other/`, account: 'acct-other', formats: ['txt'] } });
      expect(other.status).toBe(201);
      for (seen = '', changed = Date.now(); ; ) {
        await w.discover();
        const o = (await day.call('GET', `/v1/batches/${other.body.batchId}`)).body;
        if (o.status === 'finished') {
          expect(o.counts).toMatchObject({ completed: FILES, failed: 0 });
          expect(o.paused).toBeUndefined();
          break;
        }
        const now = JSON.stringify(o.counts);
        if (now !== seen) [seen, changed] = [now, Date.now()];
        else if (Date.now() - changed > 60_000) throw new Error(`other account stopped moving: ${JSON.stringify(o)}`);
        await new Promise((res) => setTimeout(res, 200));
      }
      expect((await day.call('POST', `/v1/batches/${batchId}/cancel`)).status).toBe(200);
    } finally {
      await w.close();
      await day.close();
    }
  });
});
