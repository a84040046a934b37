/**
 * Client of the OpenAI-compatible batch API `POST <baseUrl>/audio/transcriptions` (providers.md §5,
 * Appendix A). Works against OpenAI itself and the self-hosted servers of §5.4 (speaches, vLLM,
 * LocalAI; whisper.cpp with `path: '/inference'`).
 *
 * - The multipart body is a stream built around `req.audio.original()`: form fields first, then the
 *   file part, then the closing boundary; the file is never held in memory.
 * - OpenAI refuses request bodies over 25 MiB (413, §5.3). When the input is larger (known from its
 *   size up front, or counted while streaming when the size is unknown), the client either refuses
 *   with InputTooLargeError (`splitLongInput: false`) or **splits by fixed-length PCM pieces**: the
 *   audio is decoded (`req.audio.pcm()`) into pieces of at most `maxUploadBytes` minus headroom, each
 *   spooled to a temp file and sent as a 16 kHz mono WAV (~13.6 min per piece at 32 kB/s); pieces go
 *   one after the other (one request in flight per job) and their word/segment times are offset by
 *   the piece's start in the audio. Cuts are not aligned to silences, so a word straddling a cut may
 *   be split or lost.
 * - Inputs whose file name has no extension OpenAI accepts (and no content type that maps to one) are
 *   sent the same way, as WAV pieces, instead of being refused with 400.
 * - Errors are classified per Appendix A; the three error-body shapes of §5.4 are understood. A
 *   refusal the server sends before reading the body (then closing) is still read and classified
 *   by its status (`postStreaming`, http-upload.ts); only no response at all is PROVIDER_UNAVAILABLE.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { Readable } from 'node:stream';
import {
  InputTooLargeError,
  JobCancelledError,
  ProviderAuthError,
  ProviderPaymentError,
  ProviderProtocolError,
  ProviderRateLimitedError,
  ProviderRejectedError,
  ProviderTimeoutError,
  ProviderUnavailableError,
  ScribeError,
  UnsupportedCombinationError,
} from '../../domain/errors';
import { PCM_BYTES_PER_SECOND, PCM_SAMPLE_RATE } from '../../domain/pacing';
import type { Segment, Transcript, Word } from '../../domain/transcript';
import type { AudioForm, Provider, ProviderResult, SessionContext, TranscribeRequest } from '../../ports/provider';
import { postStreaming } from './http-upload';
import { parseRetryAfter } from './shared/http-errors';
import { redact as redactSecrets } from './shared/redact';

/** §5.1/§5.3: whisper-1 upload limit. */
export const OPENAI_MAX_UPLOAD_BYTES = 26_214_400;
/** §5.1: file extensions the API accepts. */
export const OPENAI_EXTENSIONS = new Set(['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm']);
const EXTENSION_BY_TYPE: Record<string, string> = {
  'audio/wav': 'wav', 'audio/x-wav': 'wav', 'audio/wave': 'wav', 'audio/vnd.wave': 'wav', 'audio/mpeg': 'mp3', 'audio/mp3': 'mp3',
  'audio/flac': 'flac', 'audio/x-flac': 'flac', 'audio/mp4': 'm4a', 'audio/m4a': 'm4a', 'audio/x-m4a': 'm4a', 'video/mp4': 'mp4',
  'audio/ogg': 'ogg', 'audio/webm': 'webm', 'video/webm': 'webm',
};
/** Room left in each piece for the multipart framing and a server that counts a little more than we do. */
const PIECE_HEADROOM_BYTES = 64 * 1024;
/** Fields the client sets itself; `req.options` cannot override them. */
const RESERVED_FIELDS = new Set(['file', 'model', 'response_format', 'timestamp_granularities', 'timestamp_granularities[]', 'stream']);

export interface OpenAIProviderOptions {
  apiKey: string;
  /** e.g. `https://api.openai.com/v1` (OPENAI_BASE_URL). */
  baseUrl: string;
  /** Path appended to baseUrl (default `/audio/transcriptions`; whisper.cpp: `/inference`). */
  path?: string;
  /** Whole-request timeout, per uploaded piece (default 600 000 ms). */
  timeoutMs?: number;
  /** Largest request body the server takes (default 26 214 400). */
  maxUploadBytes?: number;
  /** Split inputs over the limit into WAV pieces (default true); false → InputTooLargeError. */
  splitLongInput?: boolean;
  /** Where WAV pieces are spooled (default the OS temp dir). */
  spoolDir?: string;
}

/** A canonical 44-byte RIFF/WAVE header for 16 kHz mono s16le PCM of `dataBytes` bytes. */
export function wavHeader(dataBytes: number, sampleRate = PCM_SAMPLE_RATE, channels = 1): Buffer {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'latin1');
  h.writeUInt32LE(36 + dataBytes, 4);
  h.write('WAVE', 8, 'latin1');
  h.write('fmt ', 12, 'latin1');
  h.writeUInt32LE(16, 16); // fmt chunk size
  h.writeUInt16LE(1, 20); // PCM
  h.writeUInt16LE(channels, 22);
  h.writeUInt32LE(sampleRate, 24);
  h.writeUInt32LE(sampleRate * channels * 2, 28); // byte rate
  h.writeUInt16LE(channels * 2, 32); // block align
  h.writeUInt16LE(16, 34); // bits per sample
  h.write('data', 36, 'latin1');
  h.writeUInt32LE(dataBytes, 40);
  return h;
}

/** A multipart/form-data body: text fields, then one file part, streamed. */
class MultipartBody {
  readonly boundary = `----scribe-${randomBytes(12).toString('hex')}`;
  readonly head: Buffer;
  readonly tail: Buffer;
  constructor(fields: Array<[string, string]>, file: { filename: string; contentType: string }) {
    const esc = (s: string) => s.replace(/["\r\n]/g, (c) => encodeURIComponent(c));
    let head = '';
    for (const [name, value] of fields) {
      head += `--${this.boundary}\r\nContent-Disposition: form-data; name="${esc(name)}"\r\n\r\n${value}\r\n`;
    }
    head += `--${this.boundary}\r\nContent-Disposition: form-data; name="file"; filename="${esc(file.filename)}"\r\nContent-Type: ${file.contentType}\r\n\r\n`;
    this.head = Buffer.from(head, 'utf8');
    this.tail = Buffer.from(`\r\n--${this.boundary}--\r\n`, 'utf8');
  }
  get contentType(): string {
    return `multipart/form-data; boundary=${this.boundary}`;
  }
  overhead(): number {
    return this.head.length + this.tail.length;
  }
}

/** The parts of a verbose_json body the client reads (§5.2; whisper.cpp nests words in segments). */
interface VerboseJson {
  text?: unknown;
  duration?: unknown;
  segments?: Array<{ start?: unknown; end?: unknown; text?: unknown; avg_logprob?: unknown; words?: unknown }>;
  words?: unknown;
  error?: unknown;
}
interface RawWord {
  word?: unknown;
  start?: unknown;
  end?: unknown;
  probability?: unknown;
}

/** Thrown inside an upload when the streamed input passes the limit (size was not known up front). */
class OverLimit extends Error {}

const num = (x: unknown, dflt = 0) => (typeof x === 'number' && Number.isFinite(x) ? x : dflt);
const clamp01 = (x: number) => Math.max(0, Math.min(1, x));

/** Parse the three error-body shapes of §5.4: OpenAI object, whisper.cpp string, FastAPI detail. */
export function parseErrorBody(text: string): { message: string; type?: string; code?: string } {
  try {
    const j = JSON.parse(text) as { error?: unknown; detail?: unknown };
    if (j && typeof j.error === 'object' && j.error !== null) {
      const e = j.error as { message?: unknown; type?: unknown; code?: unknown };
      const out: { message: string; type?: string; code?: string } = { message: typeof e.message === 'string' ? e.message : JSON.stringify(e) };
      if (typeof e.type === 'string' && e.type) out.type = e.type;
      if (typeof e.code === 'string' && e.code) out.code = e.code;
      else if (typeof e.code === 'number') out.code = String(e.code);
      return out;
    }
    if (typeof j?.error === 'string') return { message: j.error };
    if (j?.detail !== undefined) return { message: typeof j.detail === 'string' ? j.detail : JSON.stringify(j.detail) };
  } catch {
    // not JSON
  }
  return { message: text.trim().slice(0, 500) || 'no body' };
}

/** Retry-After (seconds or HTTP date), OpenAI's `retry-after-ms`, or `x-ratelimit-reset-requests` ("1s", "6m0s", "20ms"). */
export function retryAfterMs(headers: Headers, now = Date.now()): number | undefined {
  const ms = headers.get('retry-after-ms');
  if (ms && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const after = parseRetryAfter(headers.get('retry-after'), now);
  if (after !== undefined) return after;
  const reset = headers.get('x-ratelimit-reset-requests');
  if (reset) {
    let total = 0;
    let matched = false;
    for (const m of reset.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) {
      matched = true;
      const v = Number(m[1]);
      total += m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : m[2] === 'm' ? v * 60_000 : v * 3_600_000;
    }
    if (matched) return Math.round(total);
  }
  return undefined;
}

export class OpenAIProvider implements Provider {
  readonly name = 'openai';
  private readonly endpoint: string;
  private readonly timeoutMs: number;
  private readonly maxUpload: number;
  private readonly split: boolean;

  constructor(private readonly opts: OpenAIProviderOptions) {
    this.endpoint = `${opts.baseUrl.replace(/\/+$/, '')}${opts.path ?? '/audio/transcriptions'}`;
    this.timeoutMs = opts.timeoutMs ?? 600_000;
    this.maxUpload = opts.maxUploadBytes ?? OPENAI_MAX_UPLOAD_BYTES;
    this.split = opts.splitLongInput ?? true;
  }
  audioForm(): AudioForm {
    return 'original';
  }


  async transcribe(req: TranscribeRequest, ctx: SessionContext): Promise<ProviderResult> {
    if (req.mode !== 'batch') throw new UnsupportedCombinationError(`openai: ${req.mode} mode is not supported (batch only)`);
    if (ctx.signal.aborted) throw this.cancelled();
    const fields = this.fields(req);
    // Known to be too large already: decide before opening the source at all.
    const framing = new MultipartBody(fields, { filename: '', contentType: 'application/octet-stream' }).overhead() + 1024; // + room for a file name
    if (req.audio.size !== undefined && req.audio.size + framing > this.maxUpload) {
      if (!this.split) throw this.tooLarge(req.audio.size, framing);
      return this.transcribePieces(req, ctx, fields);
    }
    const orig = await req.audio.original(ctx.signal);
    const size = orig.size ?? req.audio.size;
    const ext = this.extensionFor(orig.filename, orig.contentType);
    const body = new MultipartBody(fields, { filename: ext ? withExtension(orig.filename, ext) : orig.filename, contentType: orig.contentType ?? 'application/octet-stream' });

    const tooLarge = size !== undefined && size + body.overhead() > this.maxUpload;
    if (tooLarge || !ext) {
      orig.stream.destroy();
      if (tooLarge && !this.split) throw this.tooLarge(size, body.overhead());
      return this.transcribePieces(req, ctx, fields);
    }
    try {
      const res = await this.upload(body, orig.stream, size, ctx);
      const segments = this.emitPart(res, 0, 0, 0, ctx);
      const transcript: Transcript = { provider: this.name, model: req.model, requestId: res.requestId, duration: num(res.json.duration), channels: 1, segments };
      ctx.onEvent?.({ type: 'session:closed', code: 200 });
      return { transcript, stats: { requestId: res.requestId, bytesSent: res.bytesSent, chunksSent: 1, finalResults: segments.length, reconnects: 0 } };
    } catch (e) {
      if (!(e instanceof OverLimit)) throw e;
    }
    // The size was unknown and the stream passed the limit: the upload was abandoned before its end.
    if (!this.split) throw this.tooLarge(undefined, body.overhead());
    return this.transcribePieces(req, ctx, fields);
  }

  /** Form fields (§5.1): model, verbose_json with word + segment timestamps, then `req.options`. */
  private fields(req: TranscribeRequest): Array<[string, string]> {
    const fields: Array<[string, string]> = [
      ['model', req.model],
      ['response_format', 'verbose_json'],
      // The bracketed key, one part per value (speaches reads only this spelling).
      ['timestamp_granularities[]', 'word'],
      ['timestamp_granularities[]', 'segment'],
    ];
    for (const [k, v] of Object.entries(req.options)) {
      if (RESERVED_FIELDS.has(k)) continue;
      if (Array.isArray(v)) {
        const name = k.endsWith('[]') ? k : `${k}[]`;
        for (const item of v) fields.push([name, item]);
      } else fields.push([k, String(v)]);
    }
    return fields;
  }

  private extensionFor(filename: string, contentType?: string): string | undefined {
    const ext = extname(filename).slice(1).toLowerCase();
    if (OPENAI_EXTENSIONS.has(ext)) return ext;
    const mapped = contentType ? EXTENSION_BY_TYPE[contentType.split(';')[0]!.trim().toLowerCase()] : undefined;
    return mapped;
  }

  private tooLarge(size: number | undefined, overhead: number): InputTooLargeError {
    const what = size === undefined ? 'more than the limit' : `${size} bytes (+${overhead} bytes of form data)`;
    // Refused here, before (or instead of finishing) the upload: there is no provider status.
    return new InputTooLargeError(`openai: input is ${what}; the upload limit is ${this.maxUpload} bytes (${(this.maxUpload / 1048576).toFixed(0)} MiB) and splitting is disabled`, {
      details: { limit: this.maxUpload, ...(size !== undefined ? { size } : {}) },
    });
  }

  private cancelled(): JobCancelledError {
    return new JobCancelledError('openai: request aborted');
  }

  /**
   * One POST with a streamed multipart body. `size` known → Content-Length; otherwise chunked, and
   * the file bytes are counted: passing the limit abandons the upload with OverLimit.
   */
  private async upload(body: MultipartBody, file: Readable, size: number | undefined, ctx: SessionContext): Promise<{ json: VerboseJson; requestId: string; bytesSent: number }> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const local = new AbortController();
    const signal = AbortSignal.any([ctx.signal, timeout, local.signal]);
    const fileLimit = this.maxUpload - body.overhead();
    let bytesSent = 0;
    let overLimit = false;
    const onAbort = () => file.destroy();
    signal.addEventListener('abort', onAbort, { once: true });
    async function* stream(): AsyncGenerator<Uint8Array> {
      try {
        yield body.head;
        bytesSent += body.head.length;
        let fileBytes = 0;
        for await (const chunk of file as AsyncIterable<Buffer>) {
          fileBytes += chunk.length;
          if (size === undefined && fileBytes > fileLimit) {
            overLimit = true;
            local.abort();
            return;
          }
          bytesSent += chunk.length;
          yield chunk;
        }
        yield body.tail;
        bytesSent += body.tail.length;
      } finally {
        file.destroy();
      }
    }
    const headers: Record<string, string> = { authorization: `Bearer ${this.opts.apiKey}`, 'content-type': body.contentType, accept: 'application/json' };
    if (size !== undefined) headers['content-length'] = String(size + body.overhead());
    try {
      // An answer that arrives while the body is still going out (a refusal sent before reading it,
      // then a closed connection) is read and classified like any other answer.
      const res = await postStreaming(this.endpoint, { headers, body: stream(), signal });
      return { ...this.parse(res, res.text), bytesSent };
    } catch (e) {
      throw this.classifyThrown(e, overLimit, ctx.signal, timeout);
    } finally {
      signal.removeEventListener('abort', onAbort);
      file.destroy();
    }
  }

  private classifyThrown(e: unknown, overLimit: boolean, ctxSignal: AbortSignal, timeout: AbortSignal): Error {
    if (overLimit) return new OverLimit();
    if (e instanceof ScribeError) return e;
    if (ctxSignal.aborted) return this.cancelled();
    if (timeout.aborted) return new ProviderTimeoutError(`openai: no response within ${this.timeoutMs} ms`, { cause: e });
    // No response at all (refused, reset before any answer), or the body source failed.
    const err = e as { code?: string; message?: string } | undefined;
    const why = err?.code ?? err?.message ?? String(e);
    return new ProviderUnavailableError(`openai: connection failed (${this.redact(why)})`, { cause: e });
  }

  /** Status → typed error (Appendix A); 200 → verbose_json. */
  private parse(res: { status: number; headers: Headers }, text: string): { json: VerboseJson; requestId: string } {
    const requestId = res.headers.get('x-request-id') ?? randomUUID();
    if (res.status >= 200 && res.status < 300) {
      let json: VerboseJson;
      try {
        json = JSON.parse(text) as VerboseJson;
      } catch {
        throw new ProviderProtocolError(`openai: HTTP ${res.status} with a body that is not JSON (${this.redact(text.slice(0, 80))})`, { status: res.status });
      }
      // Old whisper.cpp servers answer some errors with 200 {"error":"…"}.
      if (typeof json?.error === 'string' && json.text === undefined) {
        throw new ProviderRejectedError(`openai: HTTP ${res.status} error in body: ${this.redact(json.error)}`, { status: res.status });
      }
      if (typeof json?.text !== 'string') throw new ProviderProtocolError(`openai: HTTP ${res.status} response has no "text"`, { status: res.status });
      return { json, requestId };
    }
    const err = parseErrorBody(text);
    const label = err.code ?? err.type;
    const message = `openai: HTTP ${res.status}${label ? ` ${label}` : ''}: ${this.redact(err.message)}`;
    const base = { status: res.status, details: { requestId, ...(err.type ? { type: err.type } : {}), ...(err.code ? { code: err.code } : {}) } };
    const s = res.status;
    if (s === 401) throw new ProviderAuthError(message, base);
    if (s === 402) throw new ProviderPaymentError(message, base);
    // OpenAI reports an exhausted quota as 429 insufficient_quota: waiting does not help.
    if (s === 429 && (err.code === 'insufficient_quota' || err.type === 'insufficient_quota')) throw new ProviderPaymentError(message, base);
    if (s === 429) {
      const after = retryAfterMs(res.headers);
      throw new ProviderRateLimitedError(message, after === undefined ? base : { ...base, retryAfterMs: after });
    }
    if (s === 413) throw new InputTooLargeError(message, base);
    if (s === 408) throw new ProviderTimeoutError(message, base);
    if (s >= 500 || s === 499) throw new ProviderUnavailableError(message, base);
    throw new ProviderRejectedError(message, base);
  }

  /** Server messages may quote the key (OpenAI masks it, others might not): never let it through. */
  private redact(message: string): string {
    return redactSecrets(message.replace(/(API key provided: )\S+/gi, '$1[redacted]'), [this.opts.apiKey], '[redacted]');
  }

  /**
   * The long-input path: decode to 16 kHz mono PCM, spool pieces of at most `pieceBytes` to disk,
   * and upload each as WAV as soon as it is complete (decoding continues meanwhile), in order.
   */
  private async transcribePieces(req: TranscribeRequest, ctx: SessionContext, fields: Array<[string, string]>): Promise<ProviderResult> {
    const probe = new MultipartBody(fields, { filename: 'piece-0000.wav', contentType: 'audio/wav' });
    const pieceBytes = Math.floor((this.maxUpload - probe.overhead() - 44 - PIECE_HEADROOM_BYTES) / 2) * 2;
    if (pieceBytes < PCM_BYTES_PER_SECOND) throw new InputTooLargeError(`openai: upload limit ${this.maxUpload} bytes is too small to split into pieces`);
    const dir = await mkdtemp(join(this.opts.spoolDir ?? tmpdir(), 'scribe-openai-'));
    const spooler = new PieceSpooler(dir, pieceBytes);
    const local = new AbortController();
    const signal = AbortSignal.any([ctx.signal, local.signal]);
    const spooling = spooler.run(req.audio.pcm(signal), signal);
    spooling.catch(() => {});
    try {
      const segments: Segment[] = [];
      const requestIds: string[] = [];
      let bytesSent = 0;
      for (let i = 0; ; i++) {
        const piece = await spooler.piece(i);
        if (!piece) break;
        // Transcoding a container OpenAI does not take is fine; cutting it up needs splitLongInput.
        if (i === 1 && !this.split) throw this.tooLarge(undefined, probe.overhead());
        const body = new MultipartBody(fields, { filename: `piece-${String(i).padStart(4, '0')}.wav`, contentType: 'audio/wav' });
        const file = createReadStream(piece.path);
        const wav = wavStream(wavHeader(piece.bytes), file);
        const res = await this.upload(body, wav, piece.bytes + 44, ctx);
        await rm(piece.path, { force: true });
        bytesSent += res.bytesSent;
        requestIds.push(res.requestId);
        segments.push(...this.emitPart(res, piece.offsetBytes / PCM_BYTES_PER_SECOND, i, segments.length, ctx));
      }
      await spooling;
      ctx.onEvent?.({ type: 'session:closed', code: 200 });
      const requestId = requestIds.join('+');
      const transcript: Transcript = { provider: this.name, model: req.model, requestId, duration: spooler.totalBytes / PCM_BYTES_PER_SECOND, channels: 1, segments };
      return { transcript, stats: { requestId, bytesSent, chunksSent: requestIds.length, finalResults: segments.length, reconnects: 0 } };
    } catch (e) {
      if (ctx.signal.aborted && !(e instanceof JobCancelledError)) throw this.cancelled();
      throw e;
    } finally {
      local.abort();
      await spooling.catch(() => {});
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Segments of one response (times offset by `offset` s), reported as session events as they arrive. */
  private emitPart(res: { json: VerboseJson; requestId: string }, offset: number, piece: number, firstIndex: number, ctx: SessionContext): Segment[] {
    if (piece === 0) {
      // A batch request has no open socket to report earlier: the session is "open" once answered.
      ctx.onEvent?.({ type: 'session:open', requestId: res.requestId });
      ctx.onEvent?.({ type: 'session:first-result', audioSeconds: num(res.json.duration) });
    }
    const segs = this.segmentsOf(res.json, offset);
    segs.forEach((s, i) => ctx.onEvent?.({ type: 'session:final', index: firstIndex + i, start: s.start, end: s.end }));
    return segs;
  }

  /** Segments with their words: top-level `words` are assigned to the segment containing their midpoint. */
  private segmentsOf(json: VerboseJson, offset: number): Segment[] {
    const raw = Array.isArray(json.segments) ? json.segments : [];
    const at = (x: unknown) => Math.round((offset + num(x)) * 1e6) / 1e6; // audio seconds, float noise trimmed
    const toWord = (w: RawWord, conf: number): Word | null => {
      if (typeof w?.word !== 'string' || !w.word.trim()) return null;
      const word: Word = { word: w.word.trim(), start: at(w.start), end: at(w.end), confidence: typeof w.probability === 'number' ? clamp01(w.probability) : conf };
      return word;
    };
    const segs: Segment[] = raw.map((s) => {
      const conf = typeof s.avg_logprob === 'number' ? clamp01(Math.exp(s.avg_logprob)) : 1;
      const nested = Array.isArray(s.words) ? (s.words as RawWord[]).map((w) => toWord(w, conf)).filter((w): w is Word => w !== null) : [];
      return { start: at(s.start), end: at(s.end), text: typeof s.text === 'string' ? s.text.trim() : '', words: nested, confidence: conf };
    });
    if (segs.length === 0 && typeof json.text === 'string' && json.text.trim()) {
      segs.push({ start: at(0), end: at(json.duration), text: json.text.trim(), words: [], confidence: 1 });
    }
    const top = Array.isArray(json.words) ? (json.words as RawWord[]) : [];
    if (top.length && segs.length && segs.every((s) => s.words.length === 0)) {
      for (const w of top) {
        const mid = (at(w.start) + at(w.end)) / 2;
        let best = segs[0]!;
        let bestDist = Number.POSITIVE_INFINITY;
        for (const s of segs) {
          const d = mid < s.start ? s.start - mid : mid > s.end ? mid - s.end : 0;
          if (d < bestDist) {
            best = s;
            bestDist = d;
          }
        }
        const word = toWord(w, best.confidence);
        if (word) best.words.push(word);
      }
      for (const s of segs) s.words.sort((a, b) => a.start - b.start);
    }
    return segs;
  }
}

function withExtension(filename: string, ext: string): string {
  const current = extname(filename).slice(1).toLowerCase();
  return current === ext ? filename : `${filename}.${ext}`;
}

/** A Readable of a WAV header followed by a file's bytes. */
function wavStream(header: Buffer, body: Readable): Readable {
  async function* gen(): AsyncGenerator<Buffer> {
    yield header;
    yield* body as AsyncIterable<Buffer>;
  }
  const out = Readable.from(gen(), { objectMode: false });
  out.once('close', () => body.destroy());
  return out;
}

interface Piece {
  path: string;
  bytes: number;
  offsetBytes: number;
}

/** Spools a PCM stream into files of at most `pieceBytes`; `piece(i)` resolves once piece i is complete. */
class PieceSpooler {
  private readonly done: Array<Piece | null> = [];
  private waiters: Array<() => void> = [];
  private finished = false;
  private failure: unknown;
  totalBytes = 0;

  constructor(
    private readonly dir: string,
    private readonly pieceBytes: number,
  ) {}

  async run(pcm: AsyncIterable<Buffer>, signal: AbortSignal): Promise<void> {
    let out: WriteStream | undefined;
    let cur: Piece | undefined;
    const close = async () => {
      if (!out || !cur) return;
      const o = out;
      await new Promise<void>((resolve, reject) => o.end((e?: Error | null) => (e ? reject(e) : resolve())));
      this.done.push(cur);
      out = undefined;
      cur = undefined;
      this.wake();
    };
    try {
      for await (let chunk of pcm) {
        if (signal.aborted) throw signal.reason;
        while (chunk.length > 0) {
          if (!cur) {
            cur = { path: join(this.dir, `piece-${this.done.length}.pcm`), bytes: 0, offsetBytes: this.totalBytes };
            out = createWriteStream(cur.path);
          }
          const take = Math.min(chunk.length, this.pieceBytes - cur.bytes);
          const part = chunk.subarray(0, take);
          chunk = chunk.subarray(take);
          cur.bytes += take;
          this.totalBytes += take;
          if (!out!.write(part)) {
            const o = out!;
            await new Promise<void>((resolve, reject) => {
              const done = (e?: Error) => {
                o.off('drain', done);
                o.off('error', done);
                if (e) reject(e);
                else resolve();
              };
              o.once('drain', done);
              o.once('error', done);
            });
          }
          if (cur.bytes >= this.pieceBytes) await close();
        }
      }
      await close();
    } catch (e) {
      out?.destroy();
      this.failure = e;
      throw e;
    } finally {
      this.finished = true;
      this.wake();
    }
  }

  async piece(i: number): Promise<Piece | null> {
    for (;;) {
      if (i < this.done.length) return this.done[i]!;
      if (this.failure !== undefined) throw this.failure;
      if (this.finished) return null;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
