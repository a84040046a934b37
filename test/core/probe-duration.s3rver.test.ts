/**
 * app/probe-duration.ts against the S3 server with real files of every container the fleet decodes,
 * made by ffmpeg from a 20.3 s tone: the duration is within 1 % of what ffmpeg decodes the file to
 * (16 kHz mono samples / 16 000, as the worker decodes), and the cheap paths read only what they must.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecodeError, EmptyDecodeError, SourceNotFoundError } from '@scribe-fleet/core';
import { ffmpegAudioProbe } from '@scribe-fleet/core/adapters/s3/ffmpeg-audio-probe';
import type { S3Storage } from '@scribe-fleet/core/adapters/s3/s3-storage';
import { probeDuration, type ProbedDuration } from '@scribe-fleet/core/app/probe-duration';
import { testStorage, uniqueBucket } from '../helpers/env';

jest.setTimeout(300_000);

const SECONDS = 20.3;
const HEAD = 64 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'scribe-probe-'));
const ff = (...args: string[]) => execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', ...args], { maxBuffer: 1 << 28 });
const tone = (rate: number, seconds = SECONDS) => ['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=${rate}:duration=${seconds}`];

interface Case {
  name: string;
  /** ffmpeg arguments after the input(s); the output path (or pipe:1 with `pipe`) is appended. */
  args: string[];
  method: ProbedDuration['method'];
  container?: string;
  exact?: boolean;
  pipe?: boolean;
}

const CASES: Case[] = [
  { name: 'pcm16-stereo.wav', args: [...tone(44100), '-ac', '2', '-c:a', 'pcm_s16le'], method: 'header', container: 'wav' },
  { name: 'float-3ch.wav', args: [...tone(16000), '-ac', '3', '-c:a', 'pcm_f32le'], method: 'header', container: 'wav' },
  { name: 'streamed.wav', args: [...tone(16000), '-c:a', 'pcm_s16le', '-f', 'wav'], method: 'header', container: 'wav', pipe: true },
  { name: 'rf64.wav', args: [...tone(16000), '-c:a', 'pcm_s16le', '-rf64', 'always'], method: 'header', container: 'rf64' },
  { name: 'pcm.aiff', args: [...tone(22050), '-c:a', 'pcm_s16be'], method: 'header', container: 'aiff' },
  { name: 'tone.flac', args: [...tone(22050), '-c:a', 'flac'], method: 'header', container: 'flac' },
  { name: 'cbr.mp3', args: [...tone(44100), '-ac', '2', '-c:a', 'libmp3lame', '-b:a', '64k'], method: 'header', container: 'mp3' },
  { name: 'vbr.mp3', args: [...tone(44100), '-c:a', 'libmp3lame', '-q:a', '4'], method: 'header', container: 'mp3' },
  { name: 'cbr-noxing.mp3', args: [...tone(22050), '-c:a', 'libmp3lame', '-b:a', '32k', '-write_xing', '0'], method: 'header', container: 'mp3', exact: false },
  { name: 'opus.ogg', args: [...tone(48000), '-c:a', 'libopus', '-b:a', '64k'], method: 'tail', container: 'ogg-opus' },
  { name: 'vorbis.ogg', args: [...tone(44100), '-c:a', 'libvorbis', '-b:a', '224k'], method: 'tail', container: 'ogg-vorbis' },
  { name: 'moov-end.m4a', args: [...tone(44100), '-c:a', 'aac', '-b:a', '64k'], method: 'tail', container: 'mp4' },
  { name: 'faststart.m4a', args: [...tone(44100), '-c:a', 'aac', '-b:a', '64k', '-movflags', '+faststart'], method: 'header', container: 'mp4' },
  {
    name: 'video-longer.mp4', // a 25 s video with 20.3 s of sound: the sound track counts
    args: ['-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=5:duration=25', ...tone(44100), '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac'],
    method: 'tail',
    container: 'mp4',
  },
  { name: 'opus.webm', args: [...tone(48000), '-c:a', 'libopus', '-b:a', '32k'], method: 'header', container: 'webm' },
  { name: 'vorbis.mka', args: [...tone(44100), '-c:a', 'libvorbis', '-b:a', '160k'], method: 'header', container: 'matroska' },
  { name: 'streamed.webm', args: [...tone(48000), '-c:a', 'libopus', '-b:a', '32k', '-f', 'webm'], method: 'probe', pipe: true },
  { name: 'wmav2.wma', args: [...tone(44100), '-c:a', 'wmav2', '-b:a', '64k'], method: 'probe' },
  { name: 'adts.aac', args: [...tone(44100), '-c:a', 'aac', '-b:a', '64k'], method: 'probe' },
];

let storage: S3Storage;
let bucket: string;
const probe = ffmpegAudioProbe();
const files = new Map<string, { size: number; decoded: number; id3: number }>();

/** Seconds ffmpeg decodes `path` to, as the worker decodes (16 kHz mono s16le). */
const decodedSeconds = (path: string) => ff('-i', path, '-vn', '-ac', '1', '-ar', '16000', '-f', 's16le', 'pipe:1').length / 32000;

async function upload(name: string, path: string, id3 = 0): Promise<void> {
  const bytes = readFileSync(path);
  await storage.put(bucket, `in/${name}`, bytes);
  files.set(name, { size: bytes.length, decoded: decodedSeconds(path), id3 });
}

beforeAll(async () => {
  storage = testStorage();
  bucket = uniqueBucket('probe-duration');
  await storage.ensureBucket(bucket);
  for (const c of CASES) {
    const path = join(dir, c.name);
    if (c.pipe) writeFileSync(path, ff(...c.args, 'pipe:1'));
    else ff(...c.args, path);
    await upload(c.name, path);
  }
  // An MP3 behind a 300 KB ID3v2 tag (cover art as an uncompressed BMP).
  const cover = join(dir, 'cover.bmp');
  ff('-f', 'lavfi', '-i', 'testsrc=size=320x320', '-frames:v', '1', cover);
  const art = join(dir, 'cover-art.mp3');
  ff(...tone(44100), '-i', cover, '-map', '0:a', '-map', '1:v', '-c:a', 'libmp3lame', '-b:a', '64k', '-c:v', 'copy', '-id3v2_version', '3', art);
  const bytes = readFileSync(art);
  const id3 = 10 + ((bytes[6]! << 21) | (bytes[7]! << 14) | (bytes[8]! << 7) | bytes[9]!);
  await upload('cover-art.mp3', art, id3);
});

afterAll(() => {
  storage?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const run = (name: string, opts: { exact?: boolean } = {}) => probeDuration({ storage, probe }, bucket, `in/${name}`, { size: files.get(name)!.size, ...opts });
const errorPct = (seconds: number, decoded: number) => (Math.abs(seconds - decoded) / decoded) * 100;

describe('probeDuration', () => {
  test('every container: within 1 % of the decoded duration; header files read one range, tail files two', async () => {
    const rows: string[] = [];
    for (const c of CASES) {
      const f = files.get(c.name)!;
      // The first range does not hold it whole (nor, for Ogg, does it overlap the last 64 KiB).
      expect({ name: c.name, larger: f.size > (c.method === 'tail' ? 2 * HEAD : HEAD) }).toEqual({ name: c.name, larger: true });
      const r = await run(c.name);
      rows.push(`${c.name.padEnd(18)} ${r.method.padEnd(6)} ${(r.container ?? '-').padEnd(10)} ${r.seconds.toFixed(3).padStart(7)} s  decoded ${f.decoded.toFixed(3)} s  error ${errorPct(r.seconds, f.decoded).toFixed(3)} %  read ${r.bytesRead} of ${f.size} B in ${r.requests}`);
      expect({ name: c.name, method: r.method, exact: r.exact, ...(c.container ? { container: r.container } : {}) }).toEqual({
        name: c.name,
        method: c.method,
        exact: c.exact ?? true,
        ...(c.container ? { container: c.container } : {}),
      });
      expect({ name: c.name, error: errorPct(r.seconds, f.decoded) < 1 }).toEqual({ name: c.name, error: true });
      if (r.method === 'header') expect({ name: c.name, bytes: r.bytesRead, requests: r.requests }).toEqual({ name: c.name, bytes: Math.min(HEAD, f.size), requests: 1 });
      if (r.method === 'tail') expect({ name: c.name, within: r.bytesRead <= 2 * HEAD, requests: r.requests }).toEqual({ name: c.name, within: true, requests: 2 });
      if (r.method === 'probe') expect({ name: c.name, bytes: r.bytesRead }).toEqual({ name: c.name, bytes: Math.min(HEAD, f.size) + f.size });
    }
    console.log(`probeDuration, ${SECONDS} s tone:\n${rows.join('\n')}`);
  });

  test('an MP3 behind a large ID3v2 tag: the bytes past the tag are read, not the object (≤ 64 KiB + the tag)', async () => {
    const f = files.get('cover-art.mp3')!;
    expect(f.id3).toBeGreaterThan(HEAD);
    const r = await run('cover-art.mp3');
    console.log(`cover-art.mp3: ID3v2 ${f.id3} B, read ${r.bytesRead} of ${f.size} B in ${r.requests}, ${r.seconds.toFixed(3)} s, error ${errorPct(r.seconds, f.decoded).toFixed(3)} %`);
    expect(r).toMatchObject({ method: 'header', container: 'mp3', exact: true, requests: 2 });
    expect(r.bytesRead).toBeLessThanOrEqual(HEAD + f.id3);
    expect(errorPct(r.seconds, f.decoded)).toBeLessThan(1);
  });

  test('exact asked for: the CBR estimate of an MP3 without Xing gives way to a probe', async () => {
    const f = files.get('cbr-noxing.mp3')!;
    const r = await run('cbr-noxing.mp3', { exact: true });
    expect(r).toMatchObject({ method: 'probe', exact: true, container: 'mp3' });
    expect(errorPct(r.seconds, f.decoded)).toBeLessThan(0.1);
  });

  test('without a size: one HEAD first; a missing object is SOURCE_NOT_FOUND', async () => {
    const r = await probeDuration({ storage, probe }, bucket, 'in/tone.flac');
    expect(r).toMatchObject({ method: 'header', container: 'flac' });
    await expect(probeDuration({ storage, probe }, bucket, 'in/nothing-here.wav')).rejects.toBeInstanceOf(SourceNotFoundError);
  });

  test('unreadable audio: garbage is DECODE_FAILED, an empty object or a video without sound EMPTY_DECODE, naming the object', async () => {
    await storage.put(bucket, 'bad/junk.wav', 'definitely not audio\n'.repeat(5000));
    const junk = await probeDuration({ storage, probe }, bucket, 'bad/junk.wav').catch((e: unknown) => e);
    expect(junk).toBeInstanceOf(DecodeError);
    expect((junk as DecodeError).message).toMatch(/s3:\/\/.*\/bad\/junk\.wav: ffmpeg could not decode/);
    await storage.put(bucket, 'bad/empty.mp3', Buffer.alloc(0), { contentLength: 0 });
    await expect(probeDuration({ storage, probe }, bucket, 'bad/empty.mp3')).rejects.toBeInstanceOf(EmptyDecodeError);
    for (const name of ['silent.mp4', 'silent.webm']) {
      const path = join(dir, name);
      ff('-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=5:duration=4', ...(name.endsWith('.webm') ? ['-c:v', 'libvpx'] : ['-c:v', 'libx264', '-pix_fmt', 'yuv420p']), path);
      await storage.put(bucket, `bad/${name}`, readFileSync(path));
      const err = await probeDuration({ storage, probe }, bucket, `bad/${name}`).catch((e: unknown) => e);
      expect({ name, code: (err as EmptyDecodeError).code }).toEqual({ name, code: 'EMPTY_DECODE' });
    }
  });
});
