/**
 * Pre-recorded recognition: PCM through one recogniser session, raw `linear16`/`mulaw` conversion,
 * `multichannel=true` (each channel on its own), and the fixed-service-time benchmark mode.
 */
import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { decodeToPcm } from '@scribe-fleet/core/adapters/s3/ffmpeg-decoder';
import { openRecogniser } from '../kit';
import { PcmConverter, PitchTrack, speakersByPitch } from '../kit';
import { corrupt } from './errors';
import { PCM_BPS } from './options';
import { wantsDiarization } from './query';
import type { ChannelResult } from './results';

const run = promisify(execFile);

/**
 * Feed PCM chunks to one recogniser session; resolves with its finals and the audio duration. With
 * `diarize`, the pitch of the audio is tracked on the way and each final gets a speaker (kit/pitch.ts).
 */
export async function recognise(pcm: AsyncIterable<Buffer>, signal: AbortSignal, opts: { diarize?: boolean } = {}): Promise<ChannelResult> {
  const session = openRecogniser({ partialMs: 0 });
  const kill = () => session.kill();
  signal.addEventListener('abort', kill, { once: true });
  const pitch = opts.diarize ? new PitchTrack() : undefined;
  try {
    for await (const chunk of pcm) {
      pitch?.push(chunk);
      await session.write(chunk);
    }
    const res = await session.end();
    const finals = res.finals.map((f) => ({ start: f.start, end: f.end, words: f.words }));
    const out: ChannelResult = { finals, duration: res.duration };
    if (pitch) out.speakers = speakersByPitch(finals.map((f) => pitch.median(f.start, f.end)));
    return out;
  } finally {
    signal.removeEventListener('abort', kill);
    session.kill();
  }
}

/** Benchmark mode: drain the body, then hold the request for a fixed service time. */
export async function fixedService(body: Readable, serviceTimeMs: number, signal: AbortSignal): Promise<ChannelResult> {
  let bytes = 0;
  for await (const chunk of body) bytes += (chunk as Buffer).length;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, serviceTimeMs);
    signal.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason)), { once: true });
  });
  return { finals: [], duration: bytes / PCM_BPS };
}

/** Raw `linear16`/`mulaw` body (REST `encoding=` for headerless audio) → 16 kHz PCM. */
export async function* convertRaw(input: AsyncIterable<Buffer>, encoding: 'linear16' | 'mulaw', sampleRate: number): AsyncGenerator<Buffer> {
  const conv = new PcmConverter(sampleRate, encoding === 'mulaw' ? 'pcm_mulaw' : 'pcm_s16le');
  for await (const chunk of input) {
    const out = conv.convert(chunk);
    if (out.length) yield out;
  }
}

/** `multichannel=true`: spool the body, count its channels, transcribe each channel on its own. */
export async function recogniseMultichannel(input: Readable, signal: AbortSignal, opts: { diarize?: boolean } = {}): Promise<ChannelResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'dg-emu-'));
  try {
    const file = join(dir, 'input');
    await pipeline(input, createWriteStream(file), { signal });
    let channels = 1;
    try {
      const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', 'a:0', '-show_entries', 'stream=channels', '-of', 'csv=p=0', file]);
      channels = Math.max(1, parseInt(stdout.trim(), 10) || 1);
    } catch {
      throw corrupt();
    }
    const results: ChannelResult[] = [];
    for (let c = 0; c < channels; c++) {
      const wav = join(dir, `ch${c}.wav`);
      await run('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-i', file, '-af', `pan=mono|c0=c${c}`, '-ar', '16000', '-c:a', 'pcm_s16le', wav]);
      results.push(await recognise(decodeToPcm(createReadStream(wav), { signal }), signal, opts));
    }
    return results;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The recognition of one request body: fixed service time (benchmark), multichannel, raw encodings,
 * or any container ffmpeg decodes. Decoder failures are Deepgram's "corrupt or unsupported data".
 */
export async function recogniseBody(source: Readable, q: URLSearchParams, serviceMs: number | undefined, signal: AbortSignal): Promise<ChannelResult[]> {
  const enc = q.get('encoding');
  try {
    if (serviceMs !== undefined) return [await fixedService(source, serviceMs, signal)];
    const opts = { diarize: wantsDiarization(q) };
    if (q.get('multichannel') === 'true') return await recogniseMultichannel(source, signal, opts);
    if (enc === 'linear16' || enc === 'mulaw') return [await recognise(convertRaw(source, enc, Number(q.get('sample_rate') ?? 16000)), signal, opts)];
    return [await recognise(decodeToPcm(source, { signal }), signal, opts)];
  } catch (e) {
    if (signal.aborted) throw signal.reason;
    const name = (e as Error)?.name ?? '';
    if (name === 'DecodeError' || name === 'EmptyDecodeError') throw corrupt();
    throw e;
  }
}
