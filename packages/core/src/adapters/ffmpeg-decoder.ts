import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DecodeError, EmptyDecodeError } from '../domain/errors';

export interface DecodeOptions {
  signal?: AbortSignal;
  ffmpegPath?: string;
  /** Directory for spooling inputs that need seeking; defaults to the OS temp dir. */
  spoolDir?: string;
  /** Force spooling to a temp file (otherwise decided by sniffing the container). */
  spool?: boolean;
}

/**
 * ISO base media files (mp4/m4a/mov/3gp) begin with a `ftyp` box. When their index (`moov`) sits at
 * the end, ffmpeg reading from a pipe cannot seek to it and emits 0 bytes while exiting 0, so such
 * input is spooled to a temporary file first (streamed to disk, never held in memory).
 */
export function needsSpooling(head: Buffer): boolean {
  return head.length >= 8 && head.subarray(4, 8).toString('latin1') === 'ftyp';
}

/** Read the first `n` bytes of a stream and return them plus a stream that replays everything. */
async function peek(input: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const it = (input as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const parts: Buffer[] = [];
  let len = 0;
  let done = false;
  while (len < n) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    parts.push(r.value);
    len += r.value.length;
  }
  const head = Buffer.concat(parts);
  async function* replay(): AsyncGenerator<Buffer> {
    if (head.length) yield head;
    while (!done) {
      const r = await it.next();
      if (r.done) break;
      yield r.value;
    }
  }
  return { head, stream: Readable.from(replay(), { objectMode: false }) };
}

/**
 * Decode any container ffmpeg understands to 16 kHz mono s16le PCM, streamed. Throws DecodeError when
 * ffmpeg fails and EmptyDecodeError when it produced no audio at all (never an empty transcript).
 */
export async function* decodeToPcm(input: Readable | { path: string }, opts: DecodeOptions = {}): AsyncGenerator<Buffer> {
  if ('path' in input && typeof input.path === 'string' && !(input instanceof Readable)) {
    yield* runFfmpeg(input.path, undefined, opts);
    return;
  }
  const { head, stream } = await peek(input as Readable, 16);
  if (head.length === 0) throw new EmptyDecodeError('the input is empty (0 bytes): nothing to decode');
  const spool = opts.spool ?? needsSpooling(head);
  let spoolDir: string | undefined;
  try {
    if (spool) {
      spoolDir = await mkdtemp(join(opts.spoolDir ?? tmpdir(), 'scribe-spool-'));
      const file = join(spoolDir, 'input');
      await pipeline(stream, createWriteStream(file), opts.signal ? { signal: opts.signal } : {});
      yield* runFfmpeg(file, undefined, opts);
    } else {
      yield* runFfmpeg('pipe:0', stream, opts);
    }
  } finally {
    if (spoolDir) await rm(spoolDir, { recursive: true, force: true });
  }
}

/** Run ffmpeg on a file path, or on `pipe:0` fed from `stream`, yielding whole s16le samples. */
async function* runFfmpeg(source: string, stream: Readable | undefined, opts: DecodeOptions): AsyncGenerator<Buffer> {
  const spool = stream === undefined;
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', '-i', source, '-vn', '-ac', '1', '-ar', '16000', '-f', 's16le', 'pipe:1'];
  const child = spawn(opts.ffmpegPath ?? 'ffmpeg', args, { stdio: [spool ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  const onAbort = () => child.kill('SIGKILL');
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (!spool) {
    // Feed the input; EPIPE when ffmpeg gives up early is reported through its exit code instead.
    child.stdin!.on('error', () => {});
    stream!.on('error', (e) => child.stdin!.destroy(e));
    stream!.pipe(child.stdin!);
  }
  let bytes = 0;
  let odd: Buffer | null = null;
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      let buf: Buffer = odd ? Buffer.concat([odd, chunk]) : chunk;
      odd = null;
      if (buf.length % 2) {
        odd = buf.subarray(buf.length - 1);
        buf = buf.subarray(0, buf.length - 1);
      }
      if (buf.length) {
        bytes += buf.length;
        yield buf;
      }
    }
    const code = await exited;
    if (opts.signal?.aborted) throw opts.signal.reason;
    if (code !== 0) {
      throw new DecodeError(`ffmpeg could not decode the input (exit ${code}): ${lastLines(stderr)}`, { details: { exitCode: code } });
    }
    if (bytes === 0) {
      throw new EmptyDecodeError('decoding produced no audio samples (empty, silent-less or unsupported input)');
    }
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

function lastLines(text: string): string {
  const lines = text.trim().split('\n').filter(Boolean);
  return lines.slice(-3).join(' | ') || 'no message';
}
