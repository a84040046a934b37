/**
 * Speakers end to end on a stream (issue 16): the interview of channels.test.ts (kal16, slt, kal16 with
 * 1 s pauses) through the worker in stream mode with AssemblyAI `speaker_labels=true`, against the strict
 * AssemblyAI emulator (real recognition, paced at real time, speaker labels by pitch). The Turns' letters
 * become speakers 0, 1, 0 on the JSON utterances and their words, and label TXT, SRT and VTT; the
 * SpeakerRevision the emulator sends before Termination does not disturb the client. With
 * `max_speakers=1` the same file is one speaker, and no format labels it.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { wordErrorRate, type DeepgramStyleJson } from '@scribe-fleet/core';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { enqueuePrefix } from '@scribe-fleet/producer';
import { createDeps, startWorker, type RunningWorker } from '@scribe-fleet/worker';
import { startAssemblyAIEmulator, type AssemblyAIEmulatorHandle } from '@scribe-fleet/emulators';
import { testStorage, uniqueBucket } from '../helpers/env';
import { readObject, testConfig, waitForJobs, type Outcome } from '../helpers/fleet';
import { INTERVIEW_SPEAKERS, INTERVIEW_TURNS, makeInterview } from '../helpers/interview';

jest.setTimeout(600_000);

const KEY = 'e2e-aai-speakers-key';
const storage = testStorage();
const bucket = uniqueBucket('e2e-aai-spk');
let emu: AssemblyAIEmulatorHandle;
let fleet: FleetQueues;
let redis: Redis;
let worker: RunningWorker;
let outcomes: { labelled: Outcome; one: Outcome };

const text = (key: string) => readObject(storage, bucket, key).then((b) => b.toString());
const jsonOf = async (key: string) => JSON.parse(await text(key)) as DeepgramStyleJson;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'scribe-aai-spk-'));
  await storage.ensureBucket(bucket);
  await storage.put(bucket, 'turns/interview.wav', readFileSync(makeInterview(dir)));
  // The strict defaults: real-time rate (5 s allowance), 50–1000 ms frames, speech_model required.
  emu = await startAssemblyAIEmulator({ apiKeys: [KEY], port: 0 });
  const config = testConfig({ ASSEMBLYAI_API_KEY: KEY, ASSEMBLYAI_STREAMING_URL: emu.wsUrl });
  redis = new Redis(config.REDIS_URL);
  fleet = new FleetQueues(config, redis);
  worker = startWorker(config, createDeps(config));
  // Both streams at once: the file's wall time is one real-time session, not two.
  const enqueue = (out: string, options: Record<string, string | number | boolean>) =>
    enqueuePrefix({ source: `s3://${bucket}/turns/`, out: `s3://${bucket}/${out}/`, provider: 'assemblyai', mode: 'stream', options }, { storage, fleet });
  const labelled = await enqueue('out', { speaker_labels: true });
  const one = await enqueue('out-one', { speaker_labels: true, max_speakers: 1 });
  await worker.discover();
  const [a, b] = await Promise.all([waitForJobs(fleet, labelled.jobIds, 240_000), waitForJobs(fleet, one.jobIds, 240_000)]);
  outcomes = { labelled: a![0]!, one: b![0]! };
});

afterAll(async () => {
  await worker?.close();
  await fleet?.close();
  redis?.disconnect();
  await emu?.close();
});

it('AssemblyAI stream, speaker_labels=true: turns A, B, A are speakers 0, 1, 0 on JSON utterances and words, and label TXT/SRT/VTT (WER ≤ 20 %)', async () => {
  const o = outcomes.labelled;
  expect(o.state === 'failed' ? o.reason : o.state).toBe('completed');
  const json = await jsonOf('out/interview.wav.json');
  const utterances = json.results.utterances;
  console.log(`[aai-speakers] utterances: ${utterances.map((u) => `${u.speaker ?? '-'} ${u.start}-${u.end}: ${u.transcript}`).join(' | ')}`);
  expect(json.metadata.provider).toBe('assemblyai');
  // One turn per interview turn (each ends at its 1 s pause), each with its voice's speaker.
  expect(utterances.map((u) => u.speaker)).toEqual(INTERVIEW_SPEAKERS);
  for (const u of utterances) expect(u.words.every((w) => w.speaker === u.speaker)).toBe(true);
  const wers = utterances.map((u, i) => wordErrorRate(INTERVIEW_TURNS[i]!.text, u.transcript));
  const overall = wordErrorRate(INTERVIEW_TURNS.map((t) => t.text).join(' '), utterances.map((u) => u.transcript).join(' '));
  console.log(`[aai-speakers] WER per turn ${wers.map((w) => `${(w * 100).toFixed(1)} %`).join(', ')}; overall ${(overall * 100).toFixed(1)} %`);
  expect(overall).toBeLessThanOrEqual(0.2);
  for (const w of wers) expect(w).toBeLessThanOrEqual(0.35);

  // The session asked for labels, met a SpeakerRevision before Termination, and ended normally.
  const sessions = emu.sessions().filter((s) => s.query.speaker_labels === 'true' && s.query.max_speakers === undefined);
  expect(sessions).toHaveLength(1);
  expect(sessions[0]).toMatchObject({ speakerRevisionsSent: 1, terminateReceived: true, terminationSent: true, closeCode: 1000 });

  const txt = (await text('out/interview.wav.txt')).trim().split('\n');
  expect(txt.map((l) => /^Speaker (\d): /.exec(l)?.[1])).toEqual(INTERVIEW_SPEAKERS.map(String));
  const srt = (await text('out/interview.wav.srt')).trim().split(/\n\n/);
  expect(srt.length).toBeGreaterThanOrEqual(3);
  for (const b of srt) expect(b.split('\n')[2]).toMatch(/^Speaker [01]: /);
  const vtt = await text('out/interview.wav.vtt');
  expect(vtt).toMatch(/<v Speaker 0>/);
  expect(vtt).toMatch(/<v Speaker 1>/);
});

it('AssemblyAI stream, max_speakers=1: the query carries it, every turn is speaker 0, and a single voice is left unlabelled', async () => {
  const o = outcomes.one;
  expect(o.state === 'failed' ? o.reason : o.state).toBe('completed');
  const session = emu.sessions().find((s) => s.query.max_speakers !== undefined);
  expect(session?.query).toMatchObject({ speaker_labels: 'true', max_speakers: '1' });
  const json = await jsonOf('out-one/interview.wav.json');
  expect(json.results.utterances.map((u) => u.speaker)).toEqual(INTERVIEW_SPEAKERS.map(() => 0));
  const txt = await text('out-one/interview.wav.txt');
  expect(txt).not.toMatch(/Speaker/);
  expect(await text('out-one/interview.wav.vtt')).not.toMatch(/<v /);
});
