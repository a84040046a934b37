/**
 * The walking skeleton, for real: S3 server → BullMQ on Redis → worker → ffmpeg → pocketsphinx → S3,
 * on synthesised speech in four containers, in batch and stream mode.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { fromDeepgramJson, parseFailedReason, toSrt, toTxt, toVtt, wordErrorRate, type DeepgramStyleJson } from '@scribe-fleet/core';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { enqueuePrefix } from '@scribe-fleet/producer';
import { createDeps, startWorker, type RunningWorker } from '@scribe-fleet/worker';
import { testStorage, uniqueBucket } from '../helpers/env';
import { readObject, sampleFiles, testConfig, uploadSamples, waitForJobs, type Outcome } from '../helpers/fleet';

jest.setTimeout(240_000);

const config = testConfig({ LOCAL_CONCURRENCY: '8' });
const storage = testStorage();
const bucket = uniqueBucket('e2e');
let fleet: FleetQueues;
let redis: Redis;
let worker: RunningWorker;
let samples: Awaited<ReturnType<typeof sampleFiles>>;
const outcomes: Record<string, Outcome[]> = {};

beforeAll(async () => {
  samples = await sampleFiles();
  await uploadSamples(storage, bucket, 'in/', samples);
  redis = new Redis(config.REDIS_URL);
  fleet = new FleetQueues(config, redis);
  worker = startWorker(config, createDeps(config));
  const deps = { storage, fleet };
  for (const mode of ['batch', 'stream'] as const) {
    const res = await enqueuePrefix({ source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/${mode}/`, mode }, deps);
    expect(res.added).toBe(samples.length);
    await worker.discover();
    outcomes[mode] = await waitForJobs(fleet, res.jobIds);
  }
});

afterAll(async () => {
  await worker?.close();
  await fleet?.close();
  redis?.disconnect();
});

async function transcriptOf(mode: string, name: string): Promise<DeepgramStyleJson> {
  return JSON.parse((await readObject(storage, bucket, `out/${mode}/${name}.json`)).toString('utf8')) as DeepgramStyleJson;
}

describe.each(['batch', 'stream'])('%s mode', (mode) => {
  it('completes every job', () => {
    expect(outcomes[mode]!.map((o) => o.state)).toEqual(samples.map(() => 'completed'));
  });

  it('writes JSON, TXT, SRT and VTT that parse and agree, with WER ≤ 15 %', async () => {
    for (const s of samples) {
      const json = await transcriptOf(mode, s.name);
      expect(json.metadata.sha256).toBe(createHash('sha256').update(await readFile(s.path)).digest('hex'));
      expect(json.metadata.duration).toBeGreaterThan(5);
      expect(json.metadata.channels).toBe(1);
      const alt = json.results.channels[0]!.alternatives[0]!;
      const wer = wordErrorRate(s.text, alt.transcript);
      expect({ file: s.name, wer: wer <= 0.15 }).toEqual({ file: s.name, wer: true });
      // Word times are in audio time, ordered, inside the audio.
      for (let i = 0; i < alt.words.length; i++) {
        const w = alt.words[i]!;
        expect(w.end).toBeGreaterThan(w.start);
        expect(w.end).toBeLessThanOrEqual(json.metadata.duration + 0.05);
        if (i > 0) expect(w.start).toBeGreaterThanOrEqual(alt.words[i - 1]!.end - 1e-9);
      }
      // The text formats are renderings of the same transcript.
      const t = fromDeepgramJson(json);
      const txt = (await readObject(storage, bucket, `out/${mode}/${s.name}.txt`)).toString('utf8');
      const srt = (await readObject(storage, bucket, `out/${mode}/${s.name}.srt`)).toString('utf8');
      const vtt = (await readObject(storage, bucket, `out/${mode}/${s.name}.vtt`)).toString('utf8');
      expect(txt).toBe(toTxt(t));
      expect(srt).toBe(toSrt(t));
      expect(vtt).toBe(toVtt(t));
      expect(srt).toMatch(/^1\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n/);
      expect(vtt).toMatch(/^WEBVTT\n\n\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}\n/);
      expect(wordErrorRate(txt, alt.transcript)).toBe(0);
    }
  });
});

it('batch and stream transcripts of the same file agree', async () => {
  for (const s of samples) {
    const a = (await transcriptOf('batch', s.name)).results.channels[0]!.alternatives[0]!.transcript;
    const b = (await transcriptOf('stream', s.name)).results.channels[0]!.alternatives[0]!.transcript;
    expect({ file: s.name, wer: wordErrorRate(a, b) <= 0.1 }).toEqual({ file: s.name, wer: true });
  }
});

it('enqueuing the same prefix again creates no second job: done files are skipped', async () => {
  const total = async () => {
    let n = 0;
    for (const q of await fleet.allQueues()) n += await q.getJobCountByTypes('completed', 'failed', 'waiting', 'active', 'delayed', 'prioritized');
    return n;
  };
  const before = await total();
  const res = await enqueuePrefix({ source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/batch/`, mode: 'batch' }, { storage, fleet });
  expect(res).toMatchObject({ added: 0, duplicates: 0, skipped: samples.length });
  expect(await total()).toBe(before);
});

it('bad audio fails once with a typed error and nothing half-written', async () => {
  await storage.put(bucket, 'bad/empty.wav', Buffer.alloc(0));
  await storage.put(bucket, 'bad/notes.wav', Buffer.from('this is a text file, not audio\n'.repeat(50)));
  const res = await enqueuePrefix({ source: `s3://${bucket}/bad/`, out: `s3://${bucket}/out/bad/` }, { storage, fleet });
  const outs = await waitForJobs(fleet, res.jobIds);
  const codes = outs.map((o) => (o.state === 'failed' ? parseFailedReason(o.reason)?.code : 'completed')).sort();
  expect(codes).toEqual(['DECODE_FAILED', 'EMPTY_DECODE']);
  for (const id of res.jobIds) expect((await fleet.getJob(id))!.attemptsMade).toBe(1); // unrecoverable: no retries
  for (const name of ['empty.wav', 'notes.wav']) expect(await storage.head(bucket, `out/bad/${name}.json`)).toBeNull();
});
