/**
 * The same synthesised files through every provider in every mode it supports, on the real path:
 * S3 server → BullMQ/Redis → worker → provider client → strict emulator (real recognition) → S3.
 */
import { Redis } from 'ioredis';
import { fromDeepgramJson, toSrt, toTxt, toVtt, wordErrorRate, type DeepgramStyleJson } from '@scribe-fleet/core';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { enqueuePrefix } from '@scribe-fleet/producer';
import { createDeps, startWorker, type RunningWorker } from '@scribe-fleet/worker';
import { startEmulator } from '@scribe-fleet/emulators';
import type { EmulatorHandle } from '@scribe-fleet/emulators';
import { testStorage, uniqueBucket } from '../helpers/env';
import { readObject, sampleFiles, testConfig, uploadSamples, waitForJobs, type Outcome } from '../helpers/fleet';

// The outer bound; the wait itself is bounded by progress (waitForJobs).
jest.setTimeout(900_000);

const KEY = 'e2e-provider-key';
const COMBOS = [
  ['local', 'batch'],
  ['local', 'stream'],
  ['deepgram', 'batch'],
  ['deepgram', 'stream'],
  ['assemblyai', 'stream'],
  ['fireworks', 'stream'],
  ['openai', 'batch'],
] as const;

const storage = testStorage();
const bucket = uniqueBucket('e2e-prov');
const emulators: Array<EmulatorHandle & { wsUrl?: string; baseUrl?: string }> = [];
let fleet: FleetQueues;
let redis: Redis;
let worker: RunningWorker;
let samples: Awaited<ReturnType<typeof sampleFiles>>;
const outcomes = new Map<string, Outcome[]>();

beforeAll(async () => {
  samples = (await sampleFiles()).filter((s) => ['wav', 'mp3', 'm4a'].includes(s.format));
  await uploadSamples(storage, bucket, 'in/', samples);
  const [dg, aai, fw, oai] = await Promise.all(
    (['deepgram', 'assemblyai', 'fireworks', 'openai'] as const).map((n) => startEmulator(n, { port: 0, keys: [KEY], lenient: false })),
  );
  emulators.push(dg!, aai!, fw!, oai!);
  const config = testConfig({
    LOCAL_CONCURRENCY: '4',
    DEEPGRAM_API_KEY: KEY,
    DEEPGRAM_URL: dg!.url,
    ASSEMBLYAI_API_KEY: KEY,
    ASSEMBLYAI_STREAMING_URL: aai!.wsUrl!,
    FIREWORKS_API_KEY: KEY,
    FIREWORKS_STREAMING_URL: fw!.wsUrl!,
    OPENAI_API_KEY: KEY,
    OPENAI_BASE_URL: oai!.baseUrl!,
  });
  redis = new Redis(config.REDIS_URL);
  fleet = new FleetQueues(config, redis);
  worker = startWorker(config, createDeps(config));
  const ids = new Map<string, string[]>();
  for (const [provider, mode] of COMBOS) {
    const res = await enqueuePrefix({ source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/${provider}-${mode}/`, provider, mode }, { storage, fleet });
    ids.set(`${provider}/${mode}`, res.jobIds);
  }
  await worker.discover();
  await Promise.all([...ids].map(async ([k, jobIds]) => outcomes.set(k, await waitForJobs(fleet, jobIds, 240_000))));
});

afterAll(async () => {
  await worker?.close();
  await fleet?.close();
  redis?.disconnect();
  for (const e of emulators) await e.close();
});

describe.each(COMBOS)('%s %s', (provider, mode) => {
  it('completes every file with all four outputs, WER ≤ 15 %', async () => {
    const outs = outcomes.get(`${provider}/${mode}`)!;
    expect(outs.map((o) => (o.state === 'failed' ? o.reason : o.state))).toEqual(samples.map(() => 'completed'));
    for (const s of samples) {
      const base = `out/${provider}-${mode}/${s.name}`;
      const json = JSON.parse((await readObject(storage, bucket, `${base}.json`)).toString('utf8')) as DeepgramStyleJson;
      expect(json.metadata.provider).toBe(provider);
      const t = fromDeepgramJson(json);
      const text = json.results.channels[0]!.alternatives[0]!.transcript;
      expect({ file: s.name, wer: wordErrorRate(s.text, text) <= 0.15, text }).toMatchObject({ file: s.name, wer: true });
      expect((await readObject(storage, bucket, `${base}.txt`)).toString('utf8')).toBe(toTxt(t));
      expect((await readObject(storage, bucket, `${base}.srt`)).toString('utf8')).toBe(toSrt(t));
      expect((await readObject(storage, bucket, `${base}.vtt`)).toString('utf8')).toBe(toVtt(t));
    }
  });
});
