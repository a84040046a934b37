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
import { PcmConverter } from '../kit';
import { corrupt } from './errors';
import { PCM_BPS } from './options';
import type { ChannelResult } from './results';

const run = promisify(execFile);

/** Feed PCM chunks to one recogniser session; resolves with its finals and the audio duration. */
export async function recognise(pcm: AsyncIterable<Buffer>, signal: AbortSignal): Promise<ChannelResult> {
  const session = openRecogniser({ partialMs: 0 });
  const kill = () => session.kill();
  signal.addEventListener('abort', kill, { once: true });
  try {
    for await (const chunk of pcm) await session.write(chunk);
    const res = await session.end();
    return { finals: res.finals.map((f) => ({ start: f.start, end: f.end, words: f.words })), duration: res.duration };
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
export async function recogniseMultichannel(input: Readable, signal: AbortSignal): Promise<ChannelResult[]> {
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
      results.push(await recognise(decodeToPcm(createReadStream(wav), { signal }), signal));
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
    if (q.get('multichannel') === 'true') return await recogniseMultichannel(source, signal);
    if (enc === 'linear16' || enc === 'mulaw') return [await recognise(convertRaw(source, enc, Number(q.get('sample_rate') ?? 16000)), signal)];
    return [await recognise(decodeToPcm(source, { signal }), signal)];
  } catch (e) {
    if (signal.aborted) throw signal.reason;
    const name = (e as Error)?.name ?? '';
    if (name === 'DecodeError' || name === 'EmptyDecodeError') throw corrupt();
    throw e;
  }
}
