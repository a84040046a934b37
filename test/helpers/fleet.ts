/** Helpers to run a real queue + worker inside a test: isolated queue names and waits without sleeps. */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { QueueEvents, type Job } from 'bullmq';
import { loadConfig, type Config, type JobSpec } from '@scribe-fleet/core';
import { redisConnection, type JobResult, type TranscribeQueue } from '@scribe-fleet/core/adapters/queue';
import type { S3Storage } from '@scribe-fleet/core/adapters/s3-storage';
import { DEFAULT_SAMPLES, synthesise, type SampleSpec } from '../../infra/local/src/samples';

/** Config for the test servers with a queue of its own, so test files never see each other's jobs. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    ...process.env,
    QUEUE_NAME: `t-${randomBytes(4).toString('hex')}`,
    JOB_BACKOFF_MS: '200',
    ...overrides,
  });
}

export function queueEvents(config: Config): QueueEvents {
  return new QueueEvents(config.QUEUE_NAME, { connection: redisConnection(config, 'worker'), prefix: config.QUEUE_PREFIX });
}

export type Outcome = { id: string; state: 'completed'; result: JobResult } | { id: string; state: 'failed'; reason: string };

/** Wait until every job has completed or failed for good (BullMQ events, no polling sleeps). */
export async function waitForJobs(queue: TranscribeQueue, events: QueueEvents, ids: string[], timeoutMs = 120_000): Promise<Outcome[]> {
  await events.waitUntilReady();
  return Promise.all(
    ids.map(async (id): Promise<Outcome> => {
      const job = (await queue.getJob(id)) as Job<JobSpec, JobResult> | undefined;
      if (!job) throw new Error(`job ${id} not found`);
      try {
        const result = await job.waitUntilFinished(events, timeoutMs);
        return { id, state: 'completed', result };
      } catch (e) {
        return { id, state: 'failed', reason: (e as Error).message };
      }
    }),
  );
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
