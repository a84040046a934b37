/**
 * Channels end to end (issue 16): a stereo file with a different synthesised sentence on each channel,
 * through the worker and the strict Deepgram emulator (real recognition, each channel on its own with
 * `multichannel=true`; pre-recorded, and live with the channels streamed interleaved at real time),
 * into S3. The JSON keeps one channel entry per channel with its own words and
 * times; SRT/VTT cues are labelled by channel and timed as their words.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { wordErrorRate, type DeepgramStyleJson } from '@scribe-fleet/core';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { enqueuePrefix } from '@scribe-fleet/producer';
import { createDeps, startWorker, type RunningWorker } from '@scribe-fleet/worker';
import { startEmulator, type DeepgramEmulatorHandle, type EmulatorHandle } from '@scribe-fleet/emulators';
import { testStorage, uniqueBucket } from '../helpers/env';
import { readObject, testConfig, waitForJobs } from '../helpers/fleet';
import { SENTENCES } from '../../infra/local/src/samples';

jest.setTimeout(600_000);

const KEY = 'e2e-channels-key';
// Sentences of the quickstart samples (pocketsphinx recognises them well when synthesised by kal16).
const LEFT = SENTENCES[1]!;
const RIGHT = SENTENCES[3]!;
const storage = testStorage();
const bucket = uniqueBucket('e2e-chan');
let emu: EmulatorHandle;
let fleet: FleetQueues;
let redis: Redis;
let worker: RunningWorker;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'scribe-chan-'));
  // Each sentence synthesised alone, then one per channel of a 12 s stereo WAV (the right one starts
  // 1 s in; both padded, as join ends with its shortest input).
  execFileSync('flite', ['-voice', 'kal16', '-t', LEFT, '-o', join(dir, 'l.wav')]);
  execFileSync('flite', ['-voice', 'kal16', '-t', RIGHT, '-o', join(dir, 'r.wav')]);
  execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-i', join(dir, 'l.wav'), '-i', join(dir, 'r.wav'), '-filter_complex', '[0:a]apad=whole_dur=12[l];[1:a]adelay=1000,apad=whole_dur=12[r];[l][r]join=inputs=2:channel_layout=stereo[a]', '-map', '[a]', '-ar', '16000', join(dir, 'stereo.wav')]);
  // A mono interview: a low voice, a high one, the low one again, with pauses between turns.
  execFileSync('flite', ['-voice', 'slt', '-t', 'yes I can hear you very well', '-o', join(dir, 'q.wav')]);
  execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-i', join(dir, 'l.wav'), '-i', join(dir, 'q.wav'), '-i', join(dir, 'r.wav'), '-filter_complex', '[0:a]apad=pad_dur=1[a];[1:a]apad=pad_dur=1[b];[a][b][2:a]concat=n=3:v=0:a=1[o]', '-map', '[o]', '-ar', '16000', '-ac', '1', join(dir, 'turns.wav')]);
  await storage.ensureBucket(bucket);
  await storage.put(bucket, 'in/call.wav', readFileSync(join(dir, 'stereo.wav')));
  await storage.put(bucket, 'turns/interview.wav', readFileSync(join(dir, 'turns.wav')));
  emu = await startEmulator('deepgram', { port: 0, keys: [KEY], lenient: false });
  const config = testConfig({ DEEPGRAM_API_KEY: KEY, DEEPGRAM_URL: emu.url });
  redis = new Redis(config.REDIS_URL);
  fleet = new FleetQueues(config, redis);
  worker = startWorker(config, createDeps(config));
});

afterAll(async () => {
  await worker?.close();
  await fleet?.close();
  redis?.disconnect();
  await emu?.close();
});

/**
 * The outputs of the stereo call under `prefix`: one channel entry per channel, each with its own
 * sentence at WER ≤ 20 % and monotonic word times, and SRT/VTT/TXT labelled by channel with cues
 * within 0.3 s of their words. Returns the JSON and each channel's WER.
 */
async function expectChannelOutputs(prefix: string, label: string): Promise<{ json: DeepgramStyleJson; wer: number[]; cueError: number }> {
  const json = JSON.parse((await readObject(storage, bucket, `${prefix}call.wav.json`)).toString()) as DeepgramStyleJson;
  expect(json.metadata.channels).toBe(2);
  expect(json.results.channels).toHaveLength(2);
  const wer = json.results.channels.map((ch, i) => {
    const words = ch.alternatives[0]!.words;
    const starts = words.map((w) => w.start);
    expect(starts).toEqual([...starts].sort((a, b) => a - b));
    const w = wordErrorRate(i === 0 ? LEFT : RIGHT, words.map((x) => x.word).join(' '));
    console.log(`[channels] ${label} channel ${i}: WER ${(w * 100).toFixed(1)} % — ${words.map((x) => x.word).join(' ')}`);
    expect(w).toBeLessThanOrEqual(0.2);
    return w;
  });
  // The right channel starts 1 s in: its first word is not before 0.9 s.
  expect(json.results.channels[1]!.alternatives[0]!.words[0]!.start).toBeGreaterThan(0.9);
  expect(new Set(json.results.utterances.map((u) => u.channel))).toEqual(new Set([0, 1]));

  // SRT/VTT: every cue labelled with its channel and timed within 0.3 s of its words.
  const srt = (await readObject(storage, bucket, `${prefix}call.wav.srt`)).toString();
  const vtt = (await readObject(storage, bucket, `${prefix}call.wav.vtt`)).toString();
  const blocks = srt.trim().split(/\n\n/);
  expect(blocks.length).toBeGreaterThan(1);
  const secs = (ts: string) => {
    const [h, m, s] = ts.replace(',', '.').split(':').map(Number);
    return h! * 3600 + m! * 60 + s!;
  };
  // Each cue is the next run of its channel's words (cues of one channel are in order).
  const next = [0, 0];
  let cueError = 0;
  blocks.forEach((b) => {
    const [, times, text] = b.split('\n');
    const m = /^\[channel (\d)\] (.*)$/.exec(text!);
    expect(m).not.toBeNull();
    const channel = Number(m![1]);
    const [from, to] = times!.split(' --> ').map(secs);
    const said = m![2]!.split(' ');
    const all = json.results.channels[channel]!.alternatives[0]!.words;
    const words = all.slice(next[channel]!, next[channel]! + said.length);
    next[channel]! += said.length;
    expect(words.map((w) => w.punctuated_word ?? w.word)).toEqual(said);
    cueError = Math.max(cueError, Math.abs(from! - words[0]!.start), Math.abs(to! - words[words.length - 1]!.end));
    expect(Math.abs(from! - words[0]!.start)).toBeLessThanOrEqual(0.3);
    expect(Math.abs(to! - words[words.length - 1]!.end)).toBeLessThanOrEqual(0.3);
  });
  console.log(`[channels] ${label}: ${blocks.length} SRT cues, largest cue/word time difference ${cueError.toFixed(3)} s`);
  expect(next).toEqual(json.results.channels.map((ch) => ch.alternatives[0]!.words.length));
  expect(vtt).toMatch(/<v Channel 0>/);
  expect(vtt).toMatch(/<v Channel 1>/);
  const txt = (await readObject(storage, bucket, `${prefix}call.wav.txt`)).toString();
  expect(txt.split('\n').filter(Boolean).every((l) => /^\[channel [01]\] /.test(l))).toBe(true);
  return { json, wer, cueError };
}

it('Deepgram batch, multichannel=true: one channel entry per channel, each WER ≤ 20 % against its own sentence, labelled cues timed as their words', async () => {
  const res = await enqueuePrefix({ source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/`, provider: 'deepgram', model: 'nova-3', options: { multichannel: true } }, { storage, fleet });
  await worker.discover();
  const [outcome] = await waitForJobs(fleet, res.jobIds, 240_000);
  expect(outcome!.state === 'failed' ? outcome!.reason : outcome!.state).toBe('completed');
  await expectChannelOutputs('out/', 'batch');
});

it('Deepgram stream, multichannel=true: the interleaved channels are streamed as channels=2 at their real byte rate, with the same outputs as batch', async () => {
  const res = await enqueuePrefix({ source: `s3://${bucket}/in/`, out: `s3://${bucket}/out-live/`, provider: 'deepgram', model: 'nova-3', mode: 'stream', options: { multichannel: true } }, { storage, fleet });
  await worker.discover();
  const [outcome] = await waitForJobs(fleet, res.jobIds, 240_000);
  expect(outcome!.state === 'failed' ? outcome!.reason : outcome!.state).toBe('completed');
  const { json } = await expectChannelOutputs('out-live/', 'stream');
  expect(json.metadata.duration).toBeCloseTo(12, 1);

  // The emulator's view: one session of 2 channels, 12 s of audio at 64 000 bytes a second, paced
  // at real time (never ahead by more than the chunk and jitter), 100 ms frames of both channels.
  const dg = emu as DeepgramEmulatorHandle;
  const rec = dg.sessions.find((s) => s.query.multichannel === 'true')!;
  expect(rec).toMatchObject({ query: { encoding: 'linear16', sample_rate: '16000', channels: '2' }, metadataSent: true, closeCode: 1000, clientBugs: [] });
  expect(Math.abs(rec.audioBytes - 12 * 64_000)).toBeLessThanOrEqual(6400);
  expect(rec.audioSeconds).toBeCloseTo(rec.audioBytes / 64_000, 6);
  expect(rec.audioSeconds).toBeCloseTo(12, 1);
  expect(rec.maxAheadSeconds).toBeLessThan(0.5);
  const binary = dg.frames.frames(rec.requestId).filter((f) => f.direction === 'in' && f.kind === 'binary');
  expect(binary.slice(0, -1).every((f) => f.size === 6400)).toBe(true);
  expect(dg.recognisers.maxInUse).toBeGreaterThanOrEqual(2);
});

it('Deepgram batch, diarize=true: the speakers the emulator tells apart are kept on JSON utterances and label every text format', async () => {
  const res = await enqueuePrefix({ source: `s3://${bucket}/turns/`, out: `s3://${bucket}/out-turns/`, provider: 'deepgram', model: 'nova-3', options: { diarize: true, utterances: true } }, { storage, fleet });
  await worker.discover();
  const [outcome] = await waitForJobs(fleet, res.jobIds, 240_000);
  expect(outcome!.state === 'failed' ? outcome!.reason : outcome!.state).toBe('completed');
  const json = JSON.parse((await readObject(storage, bucket, 'out-turns/interview.wav.json')).toString()) as DeepgramStyleJson;
  const speakers = json.results.utterances.map((u) => u.speaker);
  console.log(`[channels] diarized utterances: ${json.results.utterances.map((u) => `${u.speaker}: ${u.transcript}`).join(' | ')}`);
  // Turns: low voice, high voice, low voice again.
  expect(speakers[0]).toBe(0);
  expect(new Set(speakers)).toEqual(new Set([0, 1]));
  expect(speakers[speakers.length - 1]).toBe(0);
  for (const u of json.results.utterances) expect(u.words.every((w) => w.speaker === u.speaker)).toBe(true);
  const txt = (await readObject(storage, bucket, 'out-turns/interview.wav.txt')).toString();
  expect(txt.trim().split('\n').every((l) => /^Speaker [01]: /.test(l))).toBe(true);
  const srt = (await readObject(storage, bucket, 'out-turns/interview.wav.srt')).toString();
  for (const b of srt.trim().split(/\n\n/)) expect(b.split('\n')[2]).toMatch(/^Speaker [01]: /);
  const vtt = (await readObject(storage, bucket, 'out-turns/interview.wav.vtt')).toString();
  expect(vtt).toMatch(/<v Speaker 0>/);
  expect(vtt).toMatch(/<v Speaker 1>/);
});
