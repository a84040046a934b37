/** Helpers to run a real queue + worker inside a test: isolated queue names and waits without sleeps. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig, type Config } from '@scribe-fleet/core';
import type { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import type { JobResult } from '@scribe-fleet/core';
import type { S3Storage } from '@scribe-fleet/core/adapters/s3/s3-storage';
import { DEFAULT_SAMPLES, synthesise, type SampleSpec } from '../../infra/local/src/samples';

/** Config for the test servers with a queue of its own, so test files never see each other's jobs. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    ...process.env,
    QUEUE_NAME: `t-${randomBytes(4).toString('hex')}`,
    JOB_BACKOFF_MS: '200',
    // A stuck session is retried after a minute here, not after the production default's 15.
    SESSION_STALL_MS: '60000',
    ...overrides,
  });
}

export type Outcome = { id: string; state: 'completed'; result: JobResult } | { id: string; state: 'failed'; reason: string };

/**
 * Wait until every job has completed or failed for good (BullMQ events), bounded by progress, not by
 * total time: the wait gives up only when no job of the set has changed (state, attempts, progress,
 * failed reason) for `idleMs`, so a slow machine that keeps moving is waited for and a stuck job is
 * caught. A job given up on is reported with what it was doing (state, attempts, progress, reason).
 */
export async function waitForJobs(fleet: FleetQueues, ids: string[], idleMs = 120_000): Promise<Outcome[]> {
  const outcomes = new Map<string, Outcome>();
  let lastChange = Date.now();
  let finished = false;
  // The event is the fast path, bounded by idleMs so no timer outlives the wait by more than that
  // (a 24 h one kept jest from exiting); a job it misses is settled from its state by the loop below.
  const waits = ids.map(async (id) => {
    try {
      const result = await fleet.waitForJob(id, idleMs);
      outcomes.set(id, { id, state: 'completed', result });
    } catch (e) {
      const message = (e as Error).message;
      if (/timed out before finishing/.test(message)) return;
      if (!outcomes.has(id)) outcomes.set(id, { id, state: 'failed', reason: message });
    }
    lastChange = Date.now();
  });
  let eventsDone = false;
  const all = Promise.all(waits).then(() => {
    eventsDone = true;
    finished = ids.every((id) => outcomes.has(id));
  });
  let seen = '';
  while (!finished) {
    let timer: NodeJS.Timeout | undefined;
    const tick = new Promise((r) => (timer = setTimeout(r, 1_000)));
    await (eventsDone ? tick : Promise.race([all, tick]));
    clearTimeout(timer);
    if (finished) break;
    const pending = ids.filter((id) => !outcomes.has(id));
    const now = await Promise.all(pending.map((id) => jobSnapshot(fleet, id)));
    // A job already finished is taken from its state: its event is only the fast path (seen missed
    // once in CI: a job that failed at once stayed "waited for" while its state said failed).
    for (const [i, id] of pending.entries()) {
      const snap = now[i]!;
      if (snap.state === 'completed') outcomes.set(id, { id, state: 'completed', result: snap.result as JobResult });
      else if (snap.state === 'failed') outcomes.set(id, { id, state: 'failed', reason: String(snap.failedReason) });
    }
    if (ids.every((id) => outcomes.has(id))) break;
    const snapshot = JSON.stringify(now.map(({ result: _result, ...rest }) => rest));
    if (snapshot !== seen) {
      seen = snapshot;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > idleMs) {
      for (const [i, id] of pending.entries()) {
        if (!outcomes.has(id)) outcomes.set(id, { id, state: 'failed', reason: `no job of the set moved for ${idleMs} ms; this one: ${JSON.stringify(now[i])}` });
      }
      break;
    }
  }
  return ids.map((id) => outcomes.get(id)!);
}

async function jobSnapshot(fleet: FleetQueues, id: string): Promise<Record<string, unknown>> {
  const job = await fleet.getJob(id);
  if (!job) return { id, state: 'missing' };
  return { id, state: await job.getState(), attemptsMade: job.attemptsMade, attemptsStarted: job.attemptsStarted, progress: job.progress, failedReason: job.failedReason, result: job.returnvalue };
}

const FIXTURE_DIR = join(__dirname, '..', '..', 'test-output', 'fixtures');

/** Synthesised speech samples on disk (made once, reused by later runs). */
export async function sampleFiles(samples: SampleSpec[] = DEFAULT_SAMPLES): Promise<Array<SampleSpec & { path: string }>> {
  await mkdir(FIXTURE_DIR, { recursive: true });
  const out = [];
  for (const s of samples) {
    const path = join(FIXTURE_DIR, `${s.voice}-${s.sampleRate ?? 16000}-${s.channels ?? 1}-${s.name}`);
    if (!existsSync(path)) await synthesise(s, path);
    out.push({ ...s, path });
  }
  return out;
}

export async function uploadSamples(storage: S3Storage, bucket: string, prefix: string, samples: Array<SampleSpec & { path: string }>) {
  await storage.ensureBucket(bucket);
  for (const s of samples) await storage.put(bucket, `${prefix}${s.name}`, await readFile(s.path));
}

export async function readObject(storage: S3Storage, bucket: string, key: string): Promise<Buffer> {
  const { body } = await storage.get(bucket, key);
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/**
 * One synthesised sentence followed by `pad` seconds of silence, three times: three utterances at
 * known offsets (`period` apart), as one WAV file.
 */
export async function repeatedSpeech(pad: number): Promise<{ path: string; period: number; text: string }> {
  await mkdir(FIXTURE_DIR, { recursive: true });
  const text = 'she opened the door and walked into the kitchen to make a cup of coffee';
  const one = join(FIXTURE_DIR, 'repeat-one.wav');
  if (!existsSync(one)) await synthesise({ name: 'one.wav', voice: 'kal16', format: 'wav', text }, one);
  const padded = join(FIXTURE_DIR, `repeat-padded-${pad}.wav`);
  const path = join(FIXTURE_DIR, `repeat-three-${pad}.wav`);
  if (!existsSync(path)) {
    execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-i', one, '-af', `apad=pad_dur=${pad}`, '-f', 'wav', padded]);
    execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-stream_loop', '2', '-i', padded, '-c', 'copy', path]);
  }
  const period = Number(execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', padded]).toString());
  return { path, period, text };
}
