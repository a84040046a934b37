/**
 * The local provider with the job option `multichannel`: a real stereo file (a different flite voice
 * and sentence on each channel, turns that overlap), uploaded to the test S3 server and read through
 * the S3 audio input (ffmpeg keeping the channels), one recogniser per channel.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecodeError, TruncatedInputError, VirtualClock, wordErrorRate, type Segment } from '@scribe-fleet/core';
import { storageAudioInput } from '@scribe-fleet/core/adapters/s3/audio-input';
import type { S3Storage } from '@scribe-fleet/core/adapters/s3/s3-storage';
import { LocalProvider } from '@scribe-fleet/core/adapters/local-provider';
import { shutdownRecogniser } from '@scribe-fleet/core/adapters/sphinx-recogniser';
import { systemClock } from '@scribe-fleet/core/adapters/system-clock';
import { SENTENCES } from '../../infra/local/src/samples';
import { recogniseInOwnProcess } from '../helpers/sphinx';
import { testStorage, uniqueBucket } from '../helpers/env';

jest.setTimeout(180_000);

// Channel 0 (kal16) says A, channel 1 (rms) answers B, starting 1 s before A ends; channel 0 then says
// C, 0.5 s after B ends. Written at 44.1 kHz, so the decoder resamples each channel too.
const A = SENTENCES[1]; // she opened the door and walked into the kitchen ...
const B = SENTENCES[5]; // the children played in the park ...
const C = SENTENCES[3]; // we will meet at the office tomorrow morning ...
const REF = [`${A} ${C}`, B];

const dir = mkdtempSync(join(tmpdir(), 'scribe-mc-'));
let storage: S3Storage;
let bucket: string;
let stereo: { path: string; key: string; etag: string; size: number; bytes: Buffer; seconds: number };
let mono: { key: string; etag: string; size: number };

/** amerge needs its inputs in one format. */
const MONO16K = 'aformat=sample_rates=16000:channel_layouts=mono';
const ffmpeg = (...args: string[]) => execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', ...args]);
const seconds = (path: string) => Number(execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', path]).toString());
const flite = (voice: string, text: string, name: string) => {
  const path = join(dir, name);
  execFileSync('flite', ['-voice', voice, '-t', text, '-o', path]);
  return path;
};

beforeAll(async () => {
  const a = flite('kal16', A, 'a.wav');
  const b = flite('rms', B, 'b.wav');
  const c = flite('kal16', C, 'c.wav');
  const [da, db] = [seconds(a), seconds(b)];
  const bStart = 0.6 + da - 1.0;
  const gap = bStart + db + 0.5 - (0.6 + da); // silence on channel 0 between A and C
  const path = join(dir, 'call.wav');
  ffmpeg(
    '-i', a, '-i', b, '-i', c,
    '-filter_complex',
    `[0:a]adelay=600,apad=pad_dur=${gap.toFixed(3)}[a];[a][2:a]concat=n=2:v=0:a=1,apad=pad_dur=0.6,${MONO16K}[ch0];` +
      `[1:a]adelay=${Math.round(bStart * 1000)},apad,${MONO16K}[ch1];[ch0][ch1]amerge=inputs=2`,
    '-ar', '44100', '-c:a', 'pcm_s16le', path,
  );
  storage = testStorage();
  bucket = uniqueBucket('local-mc');
  await storage.ensureBucket(bucket);
  const bytes = readFileSync(path);
  const put = await storage.put(bucket, 'calls/call.wav', bytes);
  stereo = { path, key: 'calls/call.wav', etag: put.etag, size: bytes.length, bytes, seconds: seconds(path) };
  const m = join(dir, 'memo.wav');
  ffmpeg('-i', a, '-af', 'adelay=600,apad=pad_dur=0.6', '-ar', '22050', '-ac', '1', '-c:a', 'pcm_s16le', m);
  const mbytes = readFileSync(m);
  mono = { key: 'memos/memo.wav', etag: (await storage.put(bucket, 'memos/memo.wav', mbytes)).etag, size: mbytes.length };
});

afterAll(async () => {
  await shutdownRecogniser();
  storage?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const input = (o: { key: string; etag: string; size: number }, opts: Parameters<typeof storageAudioInput>[2] = {}) =>
  storageAudioInput(storage, { bucket, key: o.key, etag: o.etag, size: o.size }, opts);

async function transcribe(o: { key: string; etag: string; size: number }, options: Record<string, string | boolean>, mode: 'batch' | 'stream' = 'batch') {
  const audio = input(o);
  await audio.prepare();
  try {
    const provider = mode === 'batch' ? new LocalProvider() : new LocalProvider({ speed: 4 });
    const res = await provider.transcribe({ mode, model: 'pocketsphinx-en-us', options, audio }, { signal: new AbortController().signal, clock: mode === 'batch' ? new VirtualClock() : systemClock });
    return { ...res, sha256: audio.sha256 };
  } finally {
    await audio.dispose();
  }
}

const textOf = (segments: Segment[], channel: number) =>
  segments
    .filter((s) => s.channel === channel)
    .map((s) => s.text)
    .join(' ');

/** Each channel's segments in order, none before the previous one's end, and the whole list by start. */
function expectTimeline(segments: Segment[], channels: number) {
  for (let c = 0; c < channels; c++) {
    let last = 0;
    for (const s of segments.filter((x) => x.channel === c)) {
      expect(s.start).toBeGreaterThanOrEqual(last);
      expect(s.end).toBeGreaterThanOrEqual(s.start);
      last = s.end;
    }
  }
  const starts = segments.map((s) => s.start);
  expect(starts).toEqual([...starts].sort((x, y) => x - y));
}

it('multichannel=true (batch): one transcript per channel, merged by time, each at WER <= 20 %', async () => {
  const res = await transcribe(stereo, { multichannel: true });
  const t = res.transcript;
  expect(t.channels).toBe(2);
  expect(t.segments.length).toBeGreaterThanOrEqual(3);
  for (const s of t.segments) expect([0, 1]).toContain(s.channel);
  const wer = [0, 1].map((c) => wordErrorRate(REF[c]!, textOf(t.segments, c)));
  console.log(`multichannel batch WER: channel 0 ${(wer[0]! * 100).toFixed(1)} % ("${textOf(t.segments, 0)}"), channel 1 ${(wer[1]! * 100).toFixed(1)} % ("${textOf(t.segments, 1)}")`);
  expect(wer[0]).toBeLessThanOrEqual(0.2);
  expect(wer[1]).toBeLessThanOrEqual(0.2);
  expectTimeline(t.segments, 2);
  // The turns in order: A on channel 0, B on channel 1, C on channel 0.
  const turns = t.segments.map((s) => s.channel).filter((c, i, all) => i === 0 || all[i - 1] !== c);
  expect(turns).toEqual([0, 1, 0]);
  expect(t.duration).toBeCloseTo(stereo.seconds, 1);
  expect(res.stats.bytesSent / 64000).toBeCloseTo(stereo.seconds, 2);
  // The original was read through the hash tap as ever.
  expect(res.sha256).toBe(createHash('sha256').update(stereo.bytes).digest('hex'));
});

it("multichannel='true' (stream, paced at 4x): the same per channel", async () => {
  const res = await transcribe(stereo, { multichannel: 'true' }, 'stream');
  const t = res.transcript;
  expect(t.channels).toBe(2);
  expect(res.stats.pacing!.earlySends).toBe(0);
  expect(res.stats.pacing!.audioSeconds).toBeCloseTo(stereo.seconds, 1);
  const wer = [0, 1].map((c) => wordErrorRate(REF[c]!, textOf(t.segments, c)));
  console.log(`multichannel stream WER: channel 0 ${(wer[0]! * 100).toFixed(1)} %, channel 1 ${(wer[1]! * 100).toFixed(1)} %`);
  expect(wer[0]).toBeLessThanOrEqual(0.2);
  expect(wer[1]).toBeLessThanOrEqual(0.2);
  expectTimeline(t.segments, 2);
});

it('without multichannel the same file is mixed to mono as before', async () => {
  const res = await transcribe(stereo, {});
  expect(res.transcript.channels).toBe(1);
  expect(res.transcript.segments.every((s) => s.channel === undefined)).toBe(true);
  expect(res.transcript.segments).toEqual(recogniseInOwnProcess(stereo.path));
  const mixed = res.transcript.segments.map((s) => s.text).join(' ');
  console.log(`mono mix: WER against A B C ${(wordErrorRate(`${A} ${B} ${C}`, mixed) * 100).toFixed(1)} % ("${mixed}")`);
});

it('a mono source with multichannel=true gives channels: 1, channel 0, the mono transcript', async () => {
  const [multi, plain] = [await transcribe(mono, { multichannel: true }), await transcribe(mono, {})];
  expect(multi.transcript.channels).toBe(1);
  expect(plain.transcript.segments.length).toBeGreaterThan(0);
  expect(multi.transcript.segments).toEqual(plain.transcript.segments.map((s) => ({ ...s, channel: 0 })));
  expect(wordErrorRate(A, textOf(multi.transcript.segments, 0))).toBeLessThanOrEqual(0.2);
});

describe('S3 audio input pcmChannels (no recogniser)', () => {
  const drain = async (audio: ReturnType<typeof storageAudioInput>) => {
    await audio.prepare();
    const { channels, pcm } = await audio.pcmChannels!();
    let bytes = 0;
    for await (const c of pcm) {
      expect(c.length % (2 * channels)).toBe(0);
      bytes += c.length;
    }
    return { channels, bytes };
  };

  it('checks truncation per channel: a stereo WAV cut in half fails, or warns when allowed', async () => {
    const cut = stereo.bytes.subarray(0, Math.floor(stereo.bytes.length / 2));
    const put = await storage.put(bucket, 'calls/cut.wav', cut);
    const o = { key: 'calls/cut.wav', etag: put.etag, size: cut.length };
    await expect(drain(input(o))).rejects.toBeInstanceOf(TruncatedInputError);
    const lenient = input(o, { allowTruncated: true });
    const { channels, bytes } = await drain(lenient);
    expect(channels).toBe(2);
    expect(bytes / 64000).toBeCloseTo(stereo.seconds / 2, 1);
    expect(lenient.warnings).toEqual(['TRUNCATED_INPUT']);
  });

  it('a spooled stereo m4a keeps its channels; undecodable bytes are a DecodeError', async () => {
    const m4a = join(dir, 'call.m4a');
    ffmpeg('-i', stereo.path, '-c:a', 'aac', '-b:a', '96k', m4a);
    const bytes = readFileSync(m4a);
    const put = await storage.put(bucket, 'calls/call.m4a', bytes);
    const audio = input({ key: 'calls/call.m4a', etag: put.etag, size: bytes.length });
    try {
      const { channels, bytes: pcm } = await drain(audio);
      expect(channels).toBe(2);
      expect(pcm / 64000).toBeCloseTo(stereo.seconds, 1);
    } finally {
      await audio.dispose();
    }
    const junk = Buffer.concat([Buffer.from('RIFF\0\0\0\0WAVEjunk'), Buffer.alloc(4096, 7)]);
    const bad = await storage.put(bucket, 'calls/junk.wav', junk);
    await expect(drain(input({ key: 'calls/junk.wav', etag: bad.etag, size: junk.length }))).rejects.toBeInstanceOf(DecodeError);
  });
});
