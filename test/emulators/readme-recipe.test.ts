/**
 * The README's emulator recipe, as a new user runs it, with every default: `npm run emulator -- <name>
 * --key my-key` (the CLI as its own process) and a worker process with nothing but the key and the URL
 * (WORKER_CONCURRENCY 50). A 40-file stream batch must complete with no retry: the emulator takes what
 * its recognisers can do in real time and answers the rest as its provider does at capacity (429 at
 * the handshake, or AssemblyAI's "Too many concurrent sessions" close), which the worker waits out
 * without spending an attempt.
 */
import { readFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { SENTENCES, type SampleSpec } from '../../infra/local/src/samples';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { enqueuePrefix } from '@scribe-fleet/producer';
import { childEnv, testStorage, uniqueBucket } from '../helpers/env';
import { sampleFiles, testConfig, waitForJobs } from '../helpers/fleet';
import { startWorkerProcess, type WorkerProcess } from '../helpers/processes';
import { startEmulatorCli, type EmulatorCli } from '../helpers/emulator-cli';

// The outer bound; the waits themselves are bounded by progress.
jest.setTimeout(900_000);

const KEY = 'my-key';
const FILES = 40;
const VOICES = ['kal16', 'rms', 'awb'] as const;

/** Short recordings (one sentence each), several voices: 40 files of 3–5 s. */
const SPECS: SampleSpec[] = SENTENCES.map((text, i) => ({ name: `recipe-${i}.wav`, voice: VOICES[i % VOICES.length]!, format: 'wav', text }));

type Emulator = EmulatorCli<{ url: string; wsUrl?: string }>;

const ENV: Record<string, (e: Emulator['ready']) => Record<string, string>> = {
  deepgram: (e) => ({ DEEPGRAM_API_KEY: KEY, DEEPGRAM_URL: e.url }),
  assemblyai: (e) => ({ ASSEMBLYAI_API_KEY: KEY, ASSEMBLYAI_STREAMING_URL: e.wsUrl! }),
  fireworks: (e) => ({ FIREWORKS_API_KEY: KEY, FIREWORKS_STREAMING_URL: e.wsUrl! }),
};

describe.each(['deepgram', 'assemblyai', 'fireworks'])('%s: the README recipe with defaults', (provider) => {
  let emulator: Emulator | undefined;
  let worker: WorkerProcess | undefined;
  let fleet: FleetQueues | undefined;
  let redis: Redis | undefined;
  const storage = testStorage();

  afterAll(async () => {
    await worker?.stop();
    await emulator?.stop();
    await fleet?.close();
    redis?.disconnect();
  });

  it(`completes a ${FILES}-file stream batch, every job in one attempt`, async () => {
    const samples = await sampleFiles(SPECS);
    const bucket = uniqueBucket(`recipe-${provider}`);
    await storage.ensureBucket(bucket);
    for (let i = 0; i < FILES; i++) {
      const s = samples[i % samples.length]!;
      await storage.put(bucket, `in/${String(i).padStart(2, '0')}-${s.name}`, await readFile(s.path));
    }
    emulator = await startEmulatorCli<Emulator['ready']>([provider, '--key', KEY]);
    const config = testConfig();
    // Nothing but the README's variables (and the test's Redis and S3 server).
    worker = await startWorkerProcess(childEnv(config, ENV[provider]!(emulator.ready)));
    redis = new Redis(config.REDIS_URL);
    fleet = new FleetQueues(config, redis);
    const { jobIds } = await enqueuePrefix({ source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/`, provider, mode: 'stream' }, { storage, fleet });
    expect(jobIds).toHaveLength(FILES);

    const outcomes = await waitForJobs(fleet, jobIds, 120_000);
    const failed = outcomes.filter((o) => o.state !== 'completed');
    expect({ failed, worker: failed.length ? worker.output().slice(-3000) : '' }).toEqual({ failed: [], worker: '' });
    // No retry: every job completed in its first attempt (a refusal at capacity spends none), no stall.
    const attempts = await Promise.all(jobIds.map(async (id) => {
      const job = (await fleet!.getJob(id))!;
      return job.attemptsMade + (job.stalledCounter ?? 0);
    }));
    expect(attempts).toEqual(jobIds.map(() => 1));
    const stats = (await (await fetch(`${emulator.ready.url}/_emulator/stats`)).json()) as Record<string, unknown>;
    // What the emulator did at capacity, for the log.
    console.log(`${provider} recipe stats: ${JSON.stringify(stats)}`);
  });
});
