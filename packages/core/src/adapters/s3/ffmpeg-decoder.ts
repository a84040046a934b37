import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, open as openFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DecodeError, EmptyDecodeError, TruncatedInputError } from '../../domain/errors';
import { PCM_BYTES_PER_SECOND } from '../../domain/pacing';

export interface DecodeOptions {
  signal?: AbortSignal;
  ffmpegPath?: string;
  /** ffprobe, used only on files (spooled inputs) to read the audio stream's declared duration. */
  ffprobePath?: string;
  /** Directory for spooling inputs that need seeking; defaults to the OS temp dir. */
  spoolDir?: string;
  /** Force spooling to a temp file (otherwise decided by sniffing the container). */
  spool?: boolean;
  /**
   * Truncation check: the decoded audio may be shorter than the container declares by this fraction
   * before it counts as truncated (default 0.02, config `TRUNCATION_TOLERANCE`). A shortfall under
   * MIN_TRUNCATION_SECONDS never counts.
   */
  truncationTolerance?: number;
  /**
   * Truncated input completes instead of failing (config `ALLOW_TRUNCATED`): the PCM ends normally
   * and `onWarning` is told `TRUNCATED_INPUT`. Default false: the PCM stream ends by throwing
   * TruncatedInputError after the last (short) chunk.
   */
  allowTruncated?: boolean;
  /** Receives what the decoder let pass (only `TRUNCATED_INPUT` today, when allowTruncated). */
  onWarning?: (w: DecodeWarning) => void;
  /** Receives what the decoder learnt about the input once the PCM has ended (tests, telemetry). */
  onReport?: (r: DecodeReport) => void;
  /**
   * Keep the source's channels (default false: downmixed to mono): the PCM is 16 kHz s16le with the
   * channels interleaved, every chunk whole frames, and `onChannels` is told their number before the
   * first chunk. The truncation check measures the duration per channel.
   */
  keepChannels?: boolean;
  onChannels?: (channels: number) => void;
}

export interface DecodeWarning {
  code: 'TRUNCATED_INPUT';
  message: string;
  declaredSeconds: number;
  decodedSeconds: number;
}

/** Where a declared duration was read. */
export type DurationSource = 'wav-header' | 'mp3-xing' | 'mp3-vbri' | 'ffmpeg' | 'ffprobe';

export interface DeclaredDuration {
  /** Seconds the container says it holds; undefined when it says nothing reliable. */
  seconds: number | undefined;
  source: DurationSource;
  /** Why nothing reliable was said (e.g. "estimated from bitrate"), when seconds is undefined. */
  reason?: string;
}

export interface DecodeReport {
  decodedSeconds: number;
  declared: DeclaredDuration | undefined;
  truncated: boolean;
}

/** A shortfall below this many seconds is never called truncation (encoder delay, padding, rounding). */
export const MIN_TRUNCATION_SECONDS = 0.5;
export const DEFAULT_TRUNCATION_TOLERANCE = 0.02;

/** How much of the input is looked at before decoding starts (headers: WAV chunks, ID3v2 + Xing). */
const HEAD_BYTES = 64 * 1024;
/** An ID3v2 tag (cover art) up to this size is read past to find the Xing header behind it. */
const MAX_HEAD_BYTES = 1024 * 1024;

/**
 * ISO base media files (mp4/m4a/mov/3gp) begin with a `ftyp` box. When their index (`moov`) sits at
 * the end, ffmpeg reading from a pipe cannot seek to it and emits 0 bytes while exiting 0, so such
 * input is spooled to a temporary file first (streamed to disk, never held in memory).
 */
export function needsSpooling(head: Buffer): boolean {
  return head.length >= 8 && head.subarray(4, 8).toString('latin1') === 'ftyp';
}

/** True when `decodedSeconds` falls short of `declaredSeconds` by more than the tolerance allows. */
export function isTruncated(decodedSeconds: number, declaredSeconds: number, tolerance = DEFAULT_TRUNCATION_TOLERANCE): boolean {
  if (!Number.isFinite(declaredSeconds) || declaredSeconds <= 0) return false;
  return decodedSeconds < declaredSeconds * (1 - tolerance) && declaredSeconds - decodedSeconds >= MIN_TRUNCATION_SECONDS;
}

// ---- declared duration -----------------------------------------------------------------------------
//
// Where the declared duration comes from, and why (ffmpeg 5.1, input on stdin unless spooled):
//
// * WAV: ffmpeg on a pipe prints `Duration: N/A`, and on a file it clamps the header's data size to
//   the file size and *estimates* ("Estimating duration from bitrate"), so it never reports what the
//   header says. The RIFF header itself is in the first bytes we peek anyway: `data` chunk size /
//   `fmt ` byte rate. The streaming sentinels (size 0 or 0xFFFFFFFF, as ffmpeg writes to a pipe) mean
//   "unknown" and are not checked. RF64 reads the 64-bit size from `ds64`.
// * MP3: ffmpeg on a pipe prints `Duration: N/A` even with a Xing/Info header; without one the only
//   duration anyone has is an estimate from the bitrate, which must not be trusted (a VBR file or a
//   cut-off CBR file would both look "truncated"). So: the Xing/Info (or VBRI) frame count in the first
//   frame, behind any ID3v2 tag, and otherwise no check.
// * FLAC: ffmpeg on a pipe prints the STREAMINFO total (`Duration: …` on stderr for the input).
//   total_samples = 0 (unknown) prints N/A.
// * Ogg (Vorbis/Opus): the duration is only in the last page's granule position; on a pipe ffmpeg
//   prints N/A. Not checked (nothing is declared up front).
// * m4a/mp4 (always spooled, see needsSpooling): ffprobe on the spooled file, per *audio stream*
//   (the container duration is the longest stream: a video track longer than its audio must not look
//   like truncated audio).
// * Anything else on a pipe: ffmpeg's `Duration:` line, only when it is not an estimate and the input
//   has exactly one audio stream and nothing else (besides cover art), for the same reason.

/** Declared duration from the first bytes of a WAV (RIFF/RF64) or an MP3 with a Xing/Info/VBRI frame. */
export function headerDuration(head: Buffer): DeclaredDuration | undefined {
  return wavDuration(head) ?? mp3Duration(head);
}

function wavDuration(b: Buffer): DeclaredDuration | undefined {
  if (b.length < 12) return undefined;
  const riff = b.toString('latin1', 0, 4);
  if ((riff !== 'RIFF' && riff !== 'RF64') || b.toString('latin1', 8, 12) !== 'WAVE') return undefined;
  let off = 12;
  let byteRate: number | undefined;
  let formatTag: number | undefined;
  let ds64Data: number | undefined;
  while (off + 8 <= b.length) {
    const id = b.toString('latin1', off, off + 4);
    const size = b.readUInt32LE(off + 4);
    const body = off + 8;
    if (id === 'ds64' && body + 16 <= b.length) ds64Data = Number(b.readBigUInt64LE(body + 8));
    if (id === 'fmt ' && body + 12 <= b.length) {
      formatTag = b.readUInt16LE(body);
      byteRate = b.readUInt32LE(body + 8);
    }
    if (id === 'data') {
      const unknown = { seconds: undefined, source: 'wav-header' as const };
      // PCM, IEEE float, A-law, µ-law, extensible: the byte rate is exact. Compressed payloads only average.
      if (byteRate === undefined || byteRate === 0 || formatTag === undefined || ![1, 3, 6, 7, 0xfffe].includes(formatTag)) {
        return { ...unknown, reason: 'no exact byte rate in the fmt chunk' };
      }
      const dataBytes = riff === 'RF64' && size === 0xffffffff ? ds64Data : size;
      if (dataBytes === undefined || dataBytes === 0 || dataBytes === 0xffffffff) return { ...unknown, reason: 'data size unknown (streamed WAV)' };
      return { seconds: dataBytes / byteRate, source: 'wav-header' };
    }
    off = body + size + (size % 2);
  }
  return undefined; // no data chunk within the head: leave it to ffmpeg
}

const MP3_RATES: Record<number, number[]> = { 3: [44100, 48000, 32000], 2: [22050, 24000, 16000], 0: [11025, 12000, 8000] };

/** Size of the ID3v2 tag at the start of `b` (header + body + footer), 0 if none. */
export function id3v2Size(b: Buffer): number {
  if (b.length < 10 || b.toString('latin1', 0, 3) !== 'ID3') return 0;
  const syncsafe = ((b[6]! & 0x7f) << 21) | ((b[7]! & 0x7f) << 14) | ((b[8]! & 0x7f) << 7) | (b[9]! & 0x7f);
  return 10 + syncsafe + (b[5]! & 0x10 ? 10 : 0);
}

function mp3Duration(b: Buffer): DeclaredDuration | undefined {
  const off = id3v2Size(b);
  if (off + 4 > b.length) return undefined;
  const h = b.readUInt32BE(off);
  if ((h & 0xffe00000) >>> 0 !== 0xffe00000) return undefined;
  const version = (h >>> 19) & 3; // 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
  const layer = (h >>> 17) & 3; // 1 = Layer III, 2 = II, 3 = I
  const bitrateIdx = (h >>> 12) & 15;
  const rateIdx = (h >>> 10) & 3;
  const mono = ((h >>> 6) & 3) === 3;
  if (version === 1 || layer === 0 || bitrateIdx === 15 || rateIdx === 3) return undefined;
  const sampleRate = MP3_RATES[version]![rateIdx]!;
  const samplesPerFrame = layer === 3 ? 384 : layer === 2 || version === 3 ? 1152 : 576;
  const sideInfo = version === 3 ? (mono ? 17 : 32) : mono ? 9 : 17;
  const xing = off + 4 + sideInfo;
  if (xing + 12 <= b.length) {
    const tag = b.toString('latin1', xing, xing + 4);
    if (tag === 'Xing' || tag === 'Info') {
      const flags = b.readUInt32BE(xing + 4);
      if (flags & 1) return { seconds: (b.readUInt32BE(xing + 8) * samplesPerFrame) / sampleRate, source: 'mp3-xing' };
      return { seconds: undefined, source: 'mp3-xing', reason: 'Xing header without a frame count' };
    }
  }
  const vbri = off + 4 + 32;
  if (vbri + 18 <= b.length && b.toString('latin1', vbri, vbri + 4) === 'VBRI') {
    return { seconds: (b.readUInt32BE(vbri + 14) * samplesPerFrame) / sampleRate, source: 'mp3-vbri' };
  }
  return undefined; // CBR without a header: ffmpeg could only estimate from the bitrate
}

/** What ffmpeg's stderr says about input #0: its `Duration:` and its streams. */
export interface FfmpegInputInfo {
  /** Seconds, or null for `Duration: N/A`; undefined when no Duration line was seen. */
  duration: number | null | undefined;
  estimated: boolean;
  audioStreams: number;
  /** Streams other than audio and attached pictures (cover art). */
  otherStreams: number;
  /** An `Input #0` block was printed (ffmpeg opened the input). Read after exit, its stream list is whole. */
  found: boolean;
}

/** Parse the `Input #0` block of ffmpeg's stderr (plain, or with `-loglevel level+…` prefixes). */
export function parseFfmpegInput(stderr: string): FfmpegInputInfo {
  const info: FfmpegInputInfo = { duration: undefined, estimated: false, audioStreams: 0, otherStreams: 0, found: false };
  let inInput = false;
  for (const raw of stderr.split(/\r?\n/)) {
    const line = stripLevel(raw).text;
    if (/Estimating duration from bitrate/.test(line)) info.estimated = true;
    if (/^Input #0,/.test(line)) {
      inInput = info.found = true;
      continue;
    }
    if (!inInput) continue;
    if (/^(Output #0|Stream mapping:|Input #1)/.test(line) || /^\S/.test(line)) break;
    const d = /^ {2}Duration: (?:N\/A|(\d+):(\d{2}):(\d{2}(?:\.\d+)?))/.exec(line);
    if (d) {
      info.duration = d[1] === undefined ? null : Number(d[1]) * 3600 + Number(d[2]) * 60 + Number(d[3]);
      continue;
    }
    const s = /^ {2,4}Stream #0:\d+.*?: (Audio|Video|Subtitle|Data|Attachment):(.*)$/.exec(line);
    if (s) {
      if (s[1] === 'Audio') info.audioStreams += 1;
      else if (!(s[1] === 'Video' && /\(attached pic\)/.test(s[2]!))) info.otherStreams += 1;
    }
  }
  return info;
}

/** `[ctx @ 0x…] [level] text` → level and `[ctx @ 0x…] text` (lines without a level are errors). */
function stripLevel(line: string): { level: string; text: string } {
  const m = /^(\[[^\]]* @ [^\]]*\] )?\[(quiet|panic|fatal|error|warning|info|verbose|debug|trace)\] ?(.*)$/.exec(line);
  if (!m) return { level: 'error', text: line };
  return { level: m[2]!, text: m[1] && m[2] !== 'info' ? `${m[1]}${m[3]}` : m[3]! };
}

function declaredFromFfmpeg(info: FfmpegInputInfo): DeclaredDuration | undefined {
  if (info.duration === undefined) return undefined;
  if (info.duration === null) return { seconds: undefined, source: 'ffmpeg', reason: 'ffmpeg reports Duration: N/A' };
  if (info.estimated) return { seconds: undefined, source: 'ffmpeg', reason: 'ffmpeg estimated the duration from the bitrate' };
  if (info.audioStreams !== 1 || info.otherStreams > 0) return { seconds: undefined, source: 'ffmpeg', reason: 'container duration covers more than one stream' };
  return { seconds: info.duration, source: 'ffmpeg' };
}

/** ffprobe's JSON (`-show_entries stream=codec_type,duration:stream_disposition=attached_pic:format=duration`). */
export function declaredFromFfprobe(json: unknown, stderr = ''): DeclaredDuration {
  const doc = json as { streams?: Array<{ codec_type?: string; duration?: string; disposition?: { attached_pic?: number } }>; format?: { duration?: string } };
  if (/Estimating duration from bitrate/.test(stderr)) return { seconds: undefined, source: 'ffprobe', reason: 'ffprobe estimated the duration from the bitrate' };
  const streams = doc.streams ?? [];
  const audio = streams.filter((s) => s.codec_type === 'audio');
  const others = streams.filter((s) => s.codec_type !== 'audio' && !(s.codec_type === 'video' && s.disposition?.attached_pic));
  const durations = audio.map((s) => Number(s.duration)).filter((d) => Number.isFinite(d) && d > 0);
  // Per audio stream when known (the shortest, so a short second track cannot cause a false alarm).
  if (durations.length > 0 && durations.length === audio.length) return { seconds: Math.min(...durations), source: 'ffprobe' };
  const format = Number(doc.format?.duration);
  if (audio.length === 1 && others.length === 0 && Number.isFinite(format) && format > 0) return { seconds: format, source: 'ffprobe' };
  return { seconds: undefined, source: 'ffprobe', reason: 'no per-stream audio duration' };
}

// ---- streams -------------------------------------------------------------------------------------

/** Reads the first bytes of a stream and replays everything afterwards. */
class Peeked {
  private readonly it: AsyncIterator<Buffer>;
  private readonly parts: Buffer[] = [];
  private len = 0;
  private done = false;
  constructor(input: Readable) {
    this.it = (input as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }
  /** At least `n` bytes (fewer only at the end of the stream). */
  async head(n: number): Promise<Buffer> {
    while (this.len < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else {
        this.parts.push(r.value);
        this.len += r.value.length;
      }
    }
    return this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
  }
  stream(): Readable {
    const self = this;
    async function* replay(): AsyncGenerator<Buffer> {
      for (const p of self.parts.splice(0)) yield p;
      while (!self.done) {
        const r = await self.it.next();
        if (r.done) break;
        yield r.value;
      }
    }
    return Readable.from(replay(), { objectMode: false });
  }
}

/** The first HEAD_BYTES (more behind a large ID3v2 tag, up to MAX_HEAD_BYTES). */
async function readHead(read: (n: number) => Promise<Buffer>): Promise<Buffer> {
  let head = await read(HEAD_BYTES);
  const id3 = id3v2Size(head);
  if (id3 + 4096 > head.length && id3 + 4096 <= MAX_HEAD_BYTES) head = await read(id3 + 4096);
  return head;
}

async function fileHead(path: string): Promise<Buffer> {
  const fh = await openFile(path, 'r');
  try {
    return await readHead(async (n) => {
      const buf = Buffer.alloc(n);
      const { bytesRead } = await fh.read(buf, 0, n, 0);
      return buf.subarray(0, bytesRead);
    });
  } finally {
    await fh.close();
  }
}

/**
 * Decode any container ffmpeg understands to 16 kHz mono s16le PCM (the source's channels interleaved
 * with `keepChannels`), streamed. Throws DecodeError when ffmpeg fails, EmptyDecodeError when it
 * produced no audio at all (never an empty transcript), and — after the last chunk —
 * TruncatedInputError when the input declared clearly more audio than it held (see
 * DecodeOptions.truncationTolerance / allowTruncated; isTruncated has the rule).
 */
export async function* decodeToPcm(input: Readable | { path: string }, opts: DecodeOptions = {}): AsyncGenerator<Buffer> {
  if ('path' in input && typeof input.path === 'string' && !(input instanceof Readable)) {
    const head = await fileHead(input.path);
    if (head.length === 0) throw new EmptyDecodeError('the input is empty (0 bytes): nothing to decode');
    yield* runFfmpeg(input.path, undefined, headerDuration(head), opts);
    return;
  }
  const peeked = new Peeked(input as Readable);
  const head = await readHead((n) => peeked.head(n));
  if (head.length === 0) throw new EmptyDecodeError('the input is empty (0 bytes): nothing to decode');
  const stream = peeked.stream();
  const spool = opts.spool ?? needsSpooling(head);
  let spoolDir: string | undefined;
  try {
    if (spool) {
      spoolDir = await mkdtemp(join(opts.spoolDir ?? tmpdir(), 'scribe-spool-'));
      const file = join(spoolDir, 'input');
      await pipeline(stream, createWriteStream(file), opts.signal ? { signal: opts.signal } : {});
      yield* runFfmpeg(file, undefined, headerDuration(head), opts);
    } else {
      yield* runFfmpeg('pipe:0', stream, headerDuration(head), opts);
    }
  } finally {
    if (spoolDir) await rm(spoolDir, { recursive: true, force: true });
  }
}

/** ffprobe a file for its audio streams' declared duration; undefined if ffprobe fails. */
function probeFile(path: string, opts: DecodeOptions): { result: Promise<DeclaredDuration | undefined>; kill: () => void } {
  const args = ['-hide_banner', '-v', 'warning', '-of', 'json', '-show_entries', 'stream=codec_type,duration:stream_disposition=attached_pic:format=duration', path];
  const child = spawn(opts.ffprobePath ?? 'ffprobe', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
  const result = new Promise<DeclaredDuration | undefined>((resolve) => {
    child.once('error', () => resolve(undefined));
    child.once('close', (code) => {
      if (code !== 0) return resolve(undefined);
      try {
        resolve(declaredFromFfprobe(JSON.parse(out), err));
      } catch {
        resolve(undefined);
      }
    });
  });
  return { result, kill: () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL') };
}

/** Run ffmpeg on a file path, or on `pipe:0` fed from `stream`, yielding whole s16le samples. */
async function* runFfmpeg(source: string, stream: Readable | undefined, fromHeader: DeclaredDuration | undefined, opts: DecodeOptions): AsyncGenerator<Buffer> {
  const spool = stream === undefined;
  // `level+info`: the input block (Duration, streams) is printed at info level; the level prefix
  // keeps errors and warnings apart for the message of a DecodeError. -nostats: no progress lines.
  // Keeping the channels, the output is a streamed WAV (sizes unknown) for its header's channel count.
  const keep = opts.keepChannels === true;
  const output = keep ? ['-ar', '16000', '-c:a', 'pcm_s16le', '-f', 'wav', 'pipe:1'] : ['-ac', '1', '-ar', '16000', '-f', 's16le', 'pipe:1'];
  const args = ['-hide_banner', '-nostdin', '-nostats', '-loglevel', 'level+info', '-i', source, '-vn', ...output];
  const child = spawn(opts.ffmpegPath ?? 'ffmpeg', args, { stdio: [spool ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  const probe = spool && !fromHeader ? probeFile(source, opts) : undefined;
  let inputBlock = '';
  let inputDone = false;
  let errors = ''; // error lines (warnings when there are none), for the message of a DecodeError
  let warnings = '';
  let partial = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop()!;
    for (const line of lines) onLine(line);
  });
  const onLine = (raw: string) => {
    const line = raw.replace(/\r$/, '');
    if (!inputDone) {
      inputBlock += `${line}\n`;
      if (/^\[info\] (Output #0|Stream mapping:)/.test(line) || inputBlock.length > 64 * 1024) inputDone = true;
    }
    const { level, text } = stripLevel(line);
    if (!text.trim()) return;
    if (level === 'warning') warnings = `${warnings}${text}\n`.slice(-4000);
    else if (level === 'error' || level === 'fatal' || level === 'panic') errors = `${errors}${text}\n`.slice(-4000);
  };
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      if (partial) onLine(partial);
      partial = '';
      resolve(code);
    });
  });
  const onAbort = () => {
    child.kill('SIGKILL');
    probe?.kill();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (!spool) {
    // Feed the input; EPIPE when ffmpeg gives up early is reported through its exit code instead.
    child.stdin!.on('error', () => {});
    stream!.on('error', (e) => child.stdin!.destroy(e));
    stream!.pipe(child.stdin!);
  }
  let bytes = 0;
  let channels = 1;
  // Bytes held back: the WAV header until it is whole (keepChannels), then a partial frame.
  let held: Buffer | null = keep ? Buffer.alloc(0) : null;
  let inHeader = keep;
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      let buf: Buffer = held ? Buffer.concat([held, chunk]) : chunk;
      held = null;
      if (inHeader) {
        const header = streamedWavHeader(buf);
        if (!header) {
          if (buf.length > HEAD_BYTES) throw new DecodeError('ffmpeg wrote no readable WAV header');
          held = buf;
          continue;
        }
        inHeader = false;
        channels = header.channels;
        opts.onChannels?.(channels);
        buf = buf.subarray(header.dataOffset);
      }
      const frame = 2 * channels;
      const rest = buf.length % frame;
      if (rest) {
        held = buf.subarray(buf.length - rest);
        buf = buf.subarray(0, buf.length - rest);
      }
      if (buf.length) {
        bytes += buf.length;
        yield buf;
      }
    }
    const code = await exited;
    if (opts.signal?.aborted) throw opts.signal.reason;
    const input = parseFfmpegInput(inputBlock);
    if (code !== 0) {
      if (bytes === 0 && input.found && input.audioStreams === 0) throw noAudioStream(input);
      throw new DecodeError(`ffmpeg could not decode the input (exit ${code}): ${lastLines(errors || warnings)}`, { details: { exitCode: code } });
    }
    const declared = fromHeader ?? (probe ? await probe.result : undefined) ?? declaredFromFfmpeg(input);
    const decodedSeconds = bytes / (PCM_BYTES_PER_SECOND * channels);
    const truncated = declared?.seconds !== undefined && isTruncated(decodedSeconds, declared.seconds, opts.truncationTolerance ?? DEFAULT_TRUNCATION_TOLERANCE);
    opts.onReport?.({ decodedSeconds, declared, truncated });
    // Zero samples is always EMPTY_DECODE (whatever was declared: e.g. an mp4 piped with its index at
    // the end declares its full length and yields nothing, which is not truncation).
    if (bytes === 0) {
      if (input.found && input.audioStreams === 0) throw noAudioStream(input);
      const said = declared?.seconds ? ` although ${SOURCE_TEXT[declared.source]} declares ${declared.seconds.toFixed(2)} s` : '';
      throw new EmptyDecodeError(`decoding produced no audio samples${said} (empty, cut off after its header, or unsupported input)`, {
        ...(declared?.seconds ? { details: { declaredSeconds: declared.seconds, durationSource: declared.source } } : {}),
      });
    }
    if (truncated) {
      const message = `the input decodes to ${decodedSeconds.toFixed(2)} s of audio but ${SOURCE_TEXT[declared!.source]} declares ${declared!.seconds!.toFixed(2)} s: truncated or damaged`;
      if (!opts.allowTruncated) throw new TruncatedInputError(message, { details: { declaredSeconds: declared!.seconds!, decodedSeconds, durationSource: declared!.source } });
      opts.onWarning?.({ code: 'TRUNCATED_INPUT', message, declaredSeconds: declared!.seconds!, decodedSeconds });
    }
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    probe?.kill();
  }
}

/**
 * The header of the WAV ffmpeg streams to a pipe (`-f wav`, s16le): its channel count and where the
 * samples start, once the bytes up to the `data` chunk's header are in `b`; undefined before that.
 */
export function streamedWavHeader(b: Buffer): { channels: number; dataOffset: number } | undefined {
  if (b.length < 12) return undefined;
  if (b.toString('latin1', 0, 4) !== 'RIFF' || b.toString('latin1', 8, 12) !== 'WAVE') throw new DecodeError('ffmpeg wrote no WAV header');
  let channels: number | undefined;
  for (let off = 12; off + 8 <= b.length; ) {
    const id = b.toString('latin1', off, off + 4);
    const size = b.readUInt32LE(off + 4);
    if (id === 'data') {
      if (!channels) throw new DecodeError('ffmpeg wrote a WAV header without a channel count');
      return { channels, dataOffset: off + 8 };
    }
    if (id === 'fmt ') {
      if (off + 8 + 16 > b.length) return undefined;
      channels = b.readUInt16LE(off + 10);
      const bits = b.readUInt16LE(off + 22);
      if (bits !== 16) throw new DecodeError(`ffmpeg wrote ${bits}-bit samples, expected 16`);
    }
    off += 8 + size + (size % 2);
  }
  return undefined;
}

const SOURCE_TEXT: Record<DurationSource, string> = {
  'wav-header': 'its WAV header',
  'mp3-xing': 'its MP3 Xing/Info header',
  'mp3-vbri': 'its MP3 VBRI header',
  ffmpeg: 'its container',
  ffprobe: 'its audio stream',
};

function noAudioStream(input: FfmpegInputInfo): EmptyDecodeError {
  const what = input.otherStreams > 0 ? `${input.otherStreams} non-audio stream(s) and no audio stream` : 'no streams at all';
  return new EmptyDecodeError(`the input has ${what}: nothing to decode`);
}

function lastLines(text: string): string {
  const lines = text.trim().split('\n').filter(Boolean);
  return lines.slice(-3).join(' | ') || 'no message';
}
