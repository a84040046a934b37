import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { DecodeError, EmptyDecodeError } from '../../domain/errors';
import { PCM_BYTES_PER_SECOND } from '../../domain/pacing';
import type { AudioProbe } from '../../ports/audio-probe';
import { declaredFromFfprobe } from './ffmpeg-decoder';

export interface FfmpegAudioProbeOptions {
  ffmpegPath?: string;
  ffprobePath?: string;
}

/**
 * The AudioProbe on ffmpeg, fed the object on stdin (streamed, never held whole):
 *
 * - anything but mp4: decoded as the worker decodes it (16 kHz mono s16le, the stream ffmpeg picks)
 *   and the samples counted, so the duration is the one the worker will send (a header-less MP3's
 *   encoder delay and padding included, as the worker's decode includes them);
 * - mp4/m4a/mov: ffprobe, which reads through the media to an index at the end; ffmpeg cannot decode
 *   such a file from a pipe (it would have to seek back to the media, see ffmpeg-decoder.ts).
 */
export function ffmpegAudioProbe(opts: FfmpegAudioProbeOptions = {}): AudioProbe {
  return {
    measure: (body, hint) => (hint.container === 'mp4' ? viaFfprobe(body, opts, hint.signal) : viaDecode(body, opts, hint.signal)),
  };
}

interface Run {
  code: number | null;
  stdout: Buffer[];
  stdoutBytes: number;
  stderr: string;
  bytesRead: number;
}

/** Run `cmd` with `body` on stdin; keep stdout only when asked (the decode counts it instead). */
function run(cmd: string, args: string[], body: Readable, keepStdout: boolean, signal?: AbortSignal): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const r: Run = { code: null, stdout: [], stdoutBytes: 0, stderr: '', bytesRead: 0 };
    child.stdout.on('data', (d: Buffer) => {
      r.stdoutBytes += d.length;
      if (keepStdout) r.stdout.push(d);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (r.stderr = (r.stderr + d).slice(-4000)));
    // A tool that has what it needs exits before the end of the input: EPIPE here is not an error.
    child.stdin.on('error', () => {});
    body.on('data', (d: Buffer) => (r.bytesRead += d.length));
    // A read that fails midway must not pass for a short file: the measurement fails with it.
    let bodyError: unknown;
    body.on('error', (e) => {
      bodyError = e;
      child.kill('SIGKILL');
    });
    body.pipe(child.stdin);
    const onAbort = () => child.kill('SIGKILL');
    signal?.addEventListener('abort', onAbort, { once: true });
    child.once('error', (e) => {
      signal?.removeEventListener('abort', onAbort);
      reject(new DecodeError(`${cmd} could not be started: ${e.message}`, { cause: e }));
    });
    child.once('close', (code) => {
      signal?.removeEventListener('abort', onAbort);
      body.unpipe(child.stdin);
      body.destroy();
      if (signal?.aborted) return reject(signal.reason);
      if (bodyError !== undefined) return reject(bodyError);
      r.code = code;
      resolve(r);
    });
  });
}

const lastLines = (text: string) => text.trim().split('\n').filter(Boolean).slice(-3).join(' | ') || 'no message';

async function viaDecode(body: Readable, opts: FfmpegAudioProbeOptions, signal?: AbortSignal): Promise<{ seconds: number; bytesRead: number }> {
  const args = ['-hide_banner', '-nostdin', '-nostats', '-loglevel', 'error', '-i', 'pipe:0', '-vn', '-ac', '1', '-ar', '16000', '-f', 's16le', 'pipe:1'];
  const r = await run(opts.ffmpegPath ?? 'ffmpeg', args, body, false, signal);
  if (r.code !== 0) {
    if (/does not contain any stream/.test(r.stderr)) throw new EmptyDecodeError('the input has no audio stream');
    throw new DecodeError(`ffmpeg could not decode the input (exit ${r.code}): ${lastLines(r.stderr)}`, { details: { exitCode: r.code } });
  }
  if (r.stdoutBytes === 0) throw new EmptyDecodeError('decoding produced no audio samples');
  return { seconds: r.stdoutBytes / PCM_BYTES_PER_SECOND, bytesRead: r.bytesRead };
}

async function viaFfprobe(body: Readable, opts: FfmpegAudioProbeOptions, signal?: AbortSignal): Promise<{ seconds: number; bytesRead: number }> {
  const args = ['-hide_banner', '-v', 'error', '-of', 'json', '-show_entries', 'stream=codec_type,duration:stream_disposition=attached_pic:format=duration', '-i', 'pipe:0'];
  const r = await run(opts.ffprobePath ?? 'ffprobe', args, body, true, signal);
  let doc: { streams?: Array<{ codec_type?: string }> } | undefined;
  try {
    doc = JSON.parse(Buffer.concat(r.stdout).toString('utf8'));
  } catch {
    doc = undefined;
  }
  if (r.code !== 0 || !doc) throw new DecodeError(`ffprobe could not read the input (exit ${r.code}): ${lastLines(r.stderr)}`, { details: { exitCode: r.code } });
  if (!(doc.streams ?? []).some((s) => s.codec_type === 'audio')) throw new EmptyDecodeError('the input has no audio stream');
  const declared = declaredFromFfprobe(doc, r.stderr);
  if (declared.seconds === undefined) throw new DecodeError(`ffprobe found no audio duration: ${declared.reason ?? 'unknown'}`);
  return { seconds: declared.seconds, bytesRead: r.bytesRead };
}
