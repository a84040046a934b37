/**
 * Emulator of the OpenAI-compatible batch API `POST /v1/audio/transcriptions` (providers.md §5, §7.6),
 * with two self-hosted variants: whisper.cpp's `whisper-server` and speaches (§5.4).
 *
 * The multipart body is parsed as it streams in (busboy); the file part is spooled to a temp file
 * while the whole body is counted, then decoded with ffmpeg and fed to the local recogniser, so the
 * transcript and its word times are real (audio time).
 *
 * Strict by default (each rule is a switch in `rules`):
 * - OpenAI: `Authorization: Bearer <key>` (401 OpenAI error object otherwise); per-key concurrency cap
 *   → 429 OpenAI error object + Retry-After; request body > 25 MiB → 413 "Maximum content size limit
 *   (26214400) exceeded (N bytes read)" after reading the whole body (N = body bytes read; the limit
 *   is applied to the request body, the stricter reading: a file just under 25 MiB plus the form
 *   overhead is refused too); missing `file` / `model` → 400; file extension not in the §5.1 list →
 *   400; undecodable audio → 400; `response_format` json | text | srt | vtt | verbose_json.
 * - whisper.cpp: path `/inference` (configurable), `model` ignored, one inference at a time (others
 *   wait on the mutex), errors `{"error":"<string>"}` (400 no file / unreadable audio, 500, 499).
 * - speaches: unknown model → 404 `{"detail":"Model '<id>' is not installed locally…"}`; only the
 *   bracketed `timestamp_granularities[]` key is read; FastAPI-style `{"detail": …}` errors.
 *
 * Scripted faults (`faultSpecs` / `--fault`, common.ts), on requests that passed auth (error bodies in
 * the mode's shape): `429-storm` → the cap's 429 `rate_limit_exceeded` with Retry-After and
 * `x-ratelimit-*`; `5xx[=S]` → S (default 503 "The server is overloaded or not ready yet.",
 * `server_error`); `never-answer` → the request takes its slot, the body is read, nothing is sent;
 * `drop-after=S` → the same, then the socket is destroyed S s after the request started;
 * `early=STATUS` → STATUS (401 invalid_api_key, 402/429 as above, 413 the size-limit message, 5xx
 * server_error) written before the body is read, then the connection is closed.
 *
 * `serviceTimeMs`: benchmark mode — after the form checks, no decoding or recognition: the request is
 * held this many ms (whisper.cpp mode still one at a time) and answered with an empty transcript whose
 * duration is estimated from the file size as 16 kHz s16le.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { deflateSync } from 'node:zlib';
import busboy from 'busboy';
import { decodeToPcm } from '@scribe-fleet/core/adapters/s3/ffmpeg-decoder';
import type { SphinxResult } from '@scribe-fleet/core/adapters/sphinx-recogniser';
import { srtTimestamp, vttTimestamp } from '@scribe-fleet/core';
import {
  answerBeforeBody,
  bearerOrToken,
  ConcurrencyTracker,
  delay,
  FaultPlan,
  FrameLog,
  handleControlRequest,
  msUntil,
  openRecogniser,
  punctuate,
  type EmulatorHandle,
  type FaultHit,
  type FaultHooks,
  type FaultSpec,
} from './common';

/** §5.3: OpenAI's upload limit for whisper-1. */
export const OPENAI_MAX_UPLOAD_BYTES = 26_214_400;
/** §5.1: the file extensions OpenAI accepts. */
export const OPENAI_FILE_EXTENSIONS = ['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm'] as const;
export const OPENAI_RESPONSE_FORMATS = ['json', 'text', 'srt', 'verbose_json', 'vtt'] as const;
type ResponseFormat = (typeof OPENAI_RESPONSE_FORMATS)[number];

/** verbose_json reports the language as a full lowercase English name, not the ISO code (§5.2). */
const LANGUAGE_NAMES: Record<string, string> = {
  en: 'english', de: 'german', fr: 'french', es: 'spanish', it: 'italian', nl: 'dutch', pt: 'portuguese',
  pl: 'polish', sv: 'swedish', da: 'danish', no: 'norwegian', fi: 'finnish', ru: 'russian', uk: 'ukrainian',
  ja: 'japanese', zh: 'chinese', ko: 'korean', ar: 'arabic', hi: 'hindi', tr: 'turkish', cs: 'czech', el: 'greek',
};

export type OpenAIEmulatorMode = 'openai' | 'whisper.cpp' | 'speaches';

export interface OpenAIRules {
  /** Require `Authorization: Bearer <key>` with a configured key (default: on for openai, off otherwise). */
  requireAuth: boolean;
  /** Missing `model` → 400 (openai) / 422 (speaches). Off in whisper.cpp mode, which ignores `model`. */
  requireModel: boolean;
  /** File extension must be one of §5.1's list (openai mode). */
  checkExtension: boolean;
  /** Request body above `maxUploadBytes` → 413. */
  enforceSizeLimit: boolean;
  /** gpt-4o(-mini)-transcribe accept only json/text (§5.1). */
  checkModelFormats: boolean;
}

export interface OpenAIEmulatorOptions {
  mode?: OpenAIEmulatorMode;
  port?: number;
  host?: string;
  /** Valid API keys (Bearer). Default `['test-key']`. */
  keys?: string[];
  /** Per-key concurrent-request cap; a number for every key or a map with `defaultCap` for the rest. */
  caps?: Record<string, number>;
  /** Cap for keys not in `caps` (default 50 in openai mode, unlimited otherwise). */
  defaultCap?: number;
  /** Retry-After seconds sent with 429 (default 1). */
  retryAfterSeconds?: number;
  /** Upload limit in bytes (default 26 214 400 in openai mode; unlimited otherwise). */
  maxUploadBytes?: number;
  /** Request path (default `/v1/audio/transcriptions`; whisper.cpp mode `/inference`). */
  path?: string;
  /** speaches mode: the installed model ids (default `['Systran/faster-whisper-small']`). */
  installedModels?: string[];
  rules?: Partial<OpenAIRules>;
  /** Answer 429 `insufficient_quota` to everything (an account out of credit). Mutable on the handle. */
  quotaExceeded?: boolean;
  faults?: FaultHooks;
  /** Scripted faults (`--fault` grammar, common.ts); switchable at run time via `faultPlan` or `/_emulator/faults`. */
  faultSpecs?: ReadonlyArray<string | FaultSpec>;
  /** Benchmark mode: hold each valid request this many ms and answer an empty transcript (no recognition). */
  serviceTimeMs?: number;
}

/** What the emulator saw of one request (for protocol assertions). */
export interface OpenAIRequestRecord {
  id: string;
  path: string;
  status: number;
  key?: string;
  headers: { contentType?: string; contentLength?: string; transferEncoding?: string };
  fields: Record<string, string[]>;
  file?: { field: string; filename: string; mimeType: string; bytes: number };
  bodyBytes: number;
}

export interface OpenAIEmulatorHandle extends EmulatorHandle {
  readonly mode: OpenAIEmulatorMode;
  /** Full URL of the transcription endpoint. */
  readonly endpoint: string;
  /** The base URL a client appends `/audio/transcriptions` to (openai/speaches: `<url>/v1`). */
  readonly baseUrl: string;
  /** Recogniser runs in flight, across keys (whisper.cpp mode must never exceed 1). */
  readonly inference: { readonly inFlight: number; readonly max: number };
  readonly requests: OpenAIRequestRecord[];
  /**
   * 'admitted' (OpenAIRequestRecord): a request passed the gateway checks and is in flight (counted);
   * 'done' (OpenAIRequestRecord): any request finished — answered, refused, or its client went away.
   */
  readonly events: EventEmitter;
  quotaExceeded: boolean;
}

interface ErrorSpec {
  status: number;
  message: string;
  type?: string;
  param?: string | null;
  code?: string | null;
  headers?: Record<string, string>;
}

class HttpRefusal extends Error {
  constructor(readonly spec: ErrorSpec) {
    super(spec.message);
  }
}

/** Counts body bytes; stops forwarding them once `limit` is passed (the rest is only counted). */
class BodyCounter extends Transform {
  bytes = 0;
  over = false;
  constructor(
    private readonly limit: number,
    private readonly onChunk: (size: number) => void,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.onChunk(chunk.length);
    if (this.bytes > this.limit) this.over = true;
    cb(null, this.over ? undefined : chunk);
  }
}

/** A FIFO mutex (whisper.cpp's global `whisper_mutex`). */
class Mutex {
  private tail: Promise<void> = Promise.resolve();
  lock(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    const ready = this.tail.then(() => release);
    this.tail = this.tail.then(() => next);
    return ready;
  }
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** Whisper-style verbose_json built from recogniser finals (§5.2; every segment carries all ten fields). */
export function toOpenAIVerboseJson(res: SphinxResult, opts: { language: string; temperature: number; words: boolean }) {
  const segments = res.finals.map((f, id) => {
    const words = f.words.map((w) => w.word);
    const text = ` ${punctuate(words).join(' ')}`; // segment text starts with a space (§5.2)
    const mean = f.words.length ? f.words.reduce((a, w) => a + w.confidence, 0) / f.words.length : 0;
    return {
      id,
      seek: Math.floor(f.start / 30) * 3000, // start of the 30 s window, in 10 ms frames
      start: round3(f.start),
      end: round3(f.end),
      text,
      tokens: [50364, ...words.map(tokenId)],
      temperature: opts.temperature,
      avg_logprob: round3(Math.max(-5, Math.log(Math.max(mean, 1e-6)))),
      compression_ratio: round3(text.length / Math.max(1, deflateSync(text).length)),
      no_speech_prob: round3(Math.max(0, Math.min(1, 1 - mean)) * 0.1),
    };
  });
  const body: Record<string, unknown> = {
    task: 'transcribe',
    language: LANGUAGE_NAMES[opts.language] ?? opts.language,
    duration: round3(res.duration),
    text: segments.map((s) => s.text.trim()).join(' '),
    segments,
  };
  if (opts.words) {
    body.words = res.finals.flatMap((f) => f.words.map((w) => ({ word: w.word, start: round3(w.start), end: round3(w.end) })));
  }
  body.usage = { type: 'duration', seconds: Math.ceil(res.duration) };
  return body as { text: string; duration: number; segments: typeof segments } & Record<string, unknown>;
}

function tokenId(word: string): number {
  let h = 0;
  for (const c of word) h = (h * 31 + c.charCodeAt(0)) % 50257;
  return h;
}

function subtitles(segments: Array<{ start: number; end: number; text: string }>, kind: 'srt' | 'vtt'): string {
  if (kind === 'srt') return segments.map((s, i) => `${i + 1}\n${srtTimestamp(s.start)} --> ${srtTimestamp(s.end)}\n${s.text.trim()}\n\n`).join('');
  return `WEBVTT\n\n${segments.map((s) => `${vttTimestamp(s.start)} --> ${vttTimestamp(s.end)}\n${s.text.trim()}\n\n`).join('')}`;
}

/** OpenAI masks keys in its 401 message ("sk-ab***wxyz"); never echo a key whole. */
function maskKey(key: string): string {
  return key.length <= 8 ? '*'.repeat(key.length) : `${key.slice(0, 3)}${'*'.repeat(Math.min(20, key.length - 7))}${key.slice(-4)}`;
}

export async function startOpenAIEmulator(opts: OpenAIEmulatorOptions = {}): Promise<OpenAIEmulatorHandle> {
  const mode = opts.mode ?? 'openai';
  const keys = new Set(opts.keys ?? ['test-key']);
  const rules: OpenAIRules = {
    requireAuth: mode === 'openai',
    requireModel: mode !== 'whisper.cpp',
    checkExtension: mode === 'openai',
    enforceSizeLimit: true,
    checkModelFormats: mode === 'openai',
    ...opts.rules,
  };
  const maxUpload = opts.maxUploadBytes ?? (mode === 'openai' ? OPENAI_MAX_UPLOAD_BYTES : Number.POSITIVE_INFINITY);
  const path = opts.path ?? (mode === 'whisper.cpp' ? '/inference' : '/v1/audio/transcriptions');
  const installed = new Set(opts.installedModels ?? ['Systran/faster-whisper-small']);
  const defaultCap = opts.defaultCap ?? (mode === 'openai' ? 50 : Number.POSITIVE_INFINITY);
  const caps = opts.caps ?? {};
  const concurrency = new ConcurrencyTracker((key) => caps[key] ?? defaultCap);
  const frames = new FrameLog();
  const spool = await mkdtemp(join(tmpdir(), 'openai-emulator-'));
  const mutex = new Mutex();
  const sockets = new Set<Socket>();
  const requests: OpenAIRequestRecord[] = [];
  const inference = { inFlight: 0, max: 0 };
  const events = new EventEmitter();
  const faultPlan = new FaultPlan(['rest'], opts.faultSpecs ?? []);

  const errorBody = (e: ErrorSpec): unknown => {
    if (mode === 'whisper.cpp') return { error: e.message };
    if (mode === 'speaches') return { detail: e.message };
    return { error: { message: e.message, type: e.type ?? 'invalid_request_error', param: e.param ?? null, code: e.code ?? null } };
  };

  const handle: OpenAIEmulatorHandle = {
    name: 'openai',
    mode,
    url: '',
    endpoint: '',
    baseUrl: '',
    port: 0,
    concurrency,
    frames,
    faults: { ...opts.faults },
    faultPlan,
    quotaExceeded: opts.quotaExceeded ?? false,
    inference,
    requests,
    events,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await rm(spool, { recursive: true, force: true });
    },
  };

  function rateLimited(key: string): ErrorSpec {
    const cap = concurrency.capFor(key);
    const limit = Number.isFinite(cap) ? String(cap) : 'unlimited';
    const retry = opts.retryAfterSeconds ?? 1;
    return {
      status: 429,
      message: `Rate limit reached for requests on this key: Limit ${limit} concurrent, Used ${limit}, Requested 1. Please try again in ${retry}s.`,
      type: 'requests',
      code: 'rate_limit_exceeded',
      headers: {
        'retry-after': String(retry),
        'x-ratelimit-limit-requests': limit,
        'x-ratelimit-remaining-requests': '0',
        'x-ratelimit-reset-requests': `${retry}s`,
      },
    };
  }

  function serverError(status = 503): ErrorSpec {
    if (status === 503) return { status, message: 'The server is overloaded or not ready yet.', type: 'server_error' };
    return { status, message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error' };
  }

  /** `early=STATUS`: the answer for that status, as the service gives it before reading an upload. */
  function earlyError(status: number, key: string, req: IncomingMessage): ErrorSpec {
    switch (status) {
      case 401:
        return { status, message: `Incorrect API key provided: ${maskKey(key)}. You can find your API key at https://platform.openai.com/account/api-keys.`, code: 'invalid_api_key' };
      case 402:
        return { status, message: 'You exceeded your current quota, please check your plan and billing details.', type: 'insufficient_quota', code: 'insufficient_quota' };
      case 413: {
        const declared = req.headers['content-length'] ?? 'unknown';
        return { status, message: `Maximum content size limit (${Number.isFinite(maxUpload) ? maxUpload : OPENAI_MAX_UPLOAD_BYTES}) exceeded (${declared} bytes declared)`, type: 'server_error' };
      }
      case 429:
        return rateLimited(key);
      default:
        return serverError(status);
    }
  }

  /** `never-answer` / `drop-after`: the request holds its slot, its body is read, nothing is sent. */
  function holdRequest(hit: FaultHit, req: IncomingMessage, res: ServerResponse, rec: OpenAIRequestRecord, startedAt: number): Promise<void> {
    req.resume();
    req.on('data', (d: Buffer) => (rec.bodyBytes += d.length));
    const socket = req.socket;
    let dropped = false;
    const timer =
      hit.kind === 'drop-after'
        ? setTimeout(() => {
            dropped = true;
            socket.destroy();
          }, msUntil(startedAt, hit.seconds ?? 0))
        : undefined;
    return new Promise<void>((resolve) =>
      res.once('close', () => {
        clearTimeout(timer);
        rec.status = dropped ? -1 : 499;
        resolve();
      }),
    );
  }

  async function handleRequest(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const startedAt = performance.now();
    const rec: OpenAIRequestRecord = {
      id,
      path: req.url ?? '',
      status: 0,
      headers: {
        ...(req.headers['content-type'] ? { contentType: req.headers['content-type'] } : {}),
        ...(req.headers['content-length'] ? { contentLength: req.headers['content-length'] } : {}),
        ...(req.headers['transfer-encoding'] ? { transferEncoding: req.headers['transfer-encoding'] } : {}),
      },
      fields: {},
      bodyBytes: 0,
    };
    requests.push(rec);
    if (requests.length > 1000) requests.shift();
    res.once('close', () => setImmediate(() => events.emit('done', rec))); // after the slot is released
    frames.record({ session: id, direction: 'in', kind: 'http', size: 0, type: `${req.method} ${req.url}` });

    const send = async (status: number, body: string | Buffer, contentType: string, headers: Record<string, string> = {}) => {
      if (handle.faults.slowFirstByteMs) {
        const ms = handle.faults.slowFirstByteMs;
        delete handle.faults.slowFirstByteMs;
        await new Promise((r) => setTimeout(r, ms));
      }
      if (res.destroyed) {
        rec.status = 499; // whisper.cpp's "client closed request": nobody is listening any more
        return;
      }
      rec.status = status;
      const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
      res.writeHead(status, { 'content-type': contentType, 'content-length': String(buf.length), 'x-request-id': id, ...headers });
      res.end(buf);
      frames.record({ session: id, direction: 'out', kind: 'http', size: buf.length, type: String(status) });
    };
    const refuse = (e: ErrorSpec) => send(e.status, JSON.stringify(errorBody(e)), 'application/json', e.headers);

    const url = new URL(req.url ?? '/', 'http://emulator');
    if (req.method !== 'POST' || url.pathname !== path) {
      return refuse({ status: 404, message: `Invalid URL (${req.method} ${url.pathname})` });
    }

    // ---- gateway checks, answered without reading the body (Node drains it) ------------------
    let key = 'anonymous';
    const auth = bearerOrToken(req.headers.authorization);
    if (auth && auth.scheme.toLowerCase() === 'bearer') key = auth.credential;
    if (rules.requireAuth) {
      if (!auth || auth.scheme.toLowerCase() !== 'bearer') {
        return refuse({
          status: 401,
          message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        });
      }
      if (!keys.has(key)) {
        return refuse({ status: 401, message: `Incorrect API key provided: ${maskKey(key)}. You can find your API key at https://platform.openai.com/account/api-keys.`, code: 'invalid_api_key' });
      }
    }
    rec.key = key;
    if (handle.quotaExceeded) {
      return refuse({
        status: 429,
        message: 'You exceeded your current quota, please check your plan and billing details.',
        type: 'insufficient_quota',
        code: 'insufficient_quota',
      });
    }
    const hit = faultPlan.take('rest');
    if (hit?.kind === '429-storm') {
      concurrency.noteRefusal(key);
      return refuse(rateLimited(key));
    }
    if (hit?.kind === '5xx') return refuse(serverError(hit.status));
    if (hit?.kind === 'early') {
      const e = earlyError(hit.status!, key, req);
      const body = JSON.stringify(errorBody(e));
      rec.status = e.status;
      frames.record({ session: id, direction: 'out', kind: 'http', size: Buffer.byteLength(body), type: String(e.status) });
      answerBeforeBody(req, e.status, body, { 'Content-Type': 'application/json', 'x-request-id': id, ...e.headers });
      return;
    }
    if (handle.faults.fail5xxTimes && handle.faults.fail5xxTimes > 0) {
      handle.faults.fail5xxTimes -= 1;
      return refuse(serverError(503));
    }
    if (!concurrency.enter(key)) {
      hit?.refund();
      return refuse(rateLimited(key));
    }
    // From here the request is in flight at the provider until the response ends or the client goes.
    let left = false;
    const leave = () => {
      if (!left) {
        left = true;
        concurrency.leave(key);
      }
    };
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
      leave();
    });
    events.emit('admitted', rec);
    if (hit) return holdRequest(hit, req, res, rec, startedAt);
    try {
      if (handle.faults.neverAnswer) {
        delete handle.faults.neverAnswer;
        req.resume();
        await new Promise<void>((r) => res.once('close', r));
        rec.status = 499;
        return;
      }
      const form = await readForm(req, rec, id, abort.signal);
      if (form.over) {
        return refuse({ status: 413, message: `Maximum content size limit (${maxUpload}) exceeded (${form.bodyBytes} bytes read)`, type: 'server_error' });
      }
      try {
        await respond(form, rec, send, refuse, abort.signal);
      } finally {
        if (form.file) await rm(form.file.path, { force: true });
      }
    } catch (e) {
      if (e instanceof HttpRefusal) return refuse(e.spec);
      if (abort.signal.aborted || req.destroyed || res.destroyed) {
        rec.status = 499; // whisper.cpp's "client closed request"; nobody is listening any more
        frames.record({ session: id, direction: 'out', kind: 'http', size: 0, type: '499' });
        return;
      }
      return refuse({ status: 500, message: `internal error: ${(e as Error).message}`, type: 'server_error' });
    } finally {
      leave();
    }
  }

  interface Form {
    fields: Record<string, string[]>;
    file?: { path: string; filename: string; bytes: number; field: string };
    bodyBytes: number;
    over: boolean;
  }

  /** Stream the body through busboy; the file part goes to a spool file, everything is counted. */
  function readForm(req: IncomingMessage, rec: OpenAIRequestRecord, id: string, signal: AbortSignal): Promise<Form> {
    return new Promise<Form>((resolve, reject) => {
      const form: Form = { fields: rec.fields, bodyBytes: 0, over: false };
      const limit = rules.enforceSizeLimit ? maxUpload : Number.POSITIVE_INFINITY;
      const counter = new BodyCounter(limit, (size) => frames.record({ session: id, direction: 'in', kind: 'http', size, type: 'body' }));
      let settled = false;
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        req.unpipe(counter);
        req.resume(); // drain whatever is left so the answer can be read
        reject(e);
      };
      let bb: busboy.Busboy;
      try {
        bb = busboy({ headers: req.headers, limits: { fieldSize: 1 << 20 } });
      } catch (e) {
        fail(new HttpRefusal({ status: 400, message: `Invalid multipart/form-data request: ${(e as Error).message}` }));
        return;
      }
      const writes: Promise<void>[] = [];
      bb.on('field', (name, value) => {
        (form.fields[name] ??= []).push(value);
      });
      bb.on('file', (field, stream, info) => {
        if (field !== 'file' || form.file) {
          stream.resume();
          return;
        }
        const file = { path: join(spool, `${id}-${writes.length}`), filename: info.filename ?? '', bytes: 0, field };
        form.file = file;
        rec.file = { field, filename: file.filename, mimeType: info.mimeType, bytes: 0 };
        stream.on('data', (d: Buffer) => {
          file.bytes += d.length;
          rec.file!.bytes = file.bytes;
        });
        const write = pipeline(stream, createWriteStream(file.path), { signal });
        write.catch(() => {}); // awaited below, or abandoned with the request
        writes.push(write);
      });
      bb.on('close', () => {
        if (settled || counter.over) return;
        settled = true;
        form.bodyBytes = rec.bodyBytes = counter.bytes;
        Promise.all(writes).then(() => resolve(form), reject);
      });
      bb.on('error', (e: Error) => {
        if (!counter.over) fail(new HttpRefusal({ status: 400, message: `Invalid multipart/form-data request: ${e.message}` }));
      });
      counter.on('end', () => {
        if (!counter.over || settled) return;
        // Everything beyond the limit was only counted; answer 413 with the bytes read (§5.3).
        settled = true;
        form.over = true;
        form.bodyBytes = rec.bodyBytes = counter.bytes;
        bb.destroy();
        if (form.file) void rm(form.file.path, { force: true });
        resolve(form);
      });
      req.on('aborted', () => fail(new Error('client aborted the upload')));
      signal.addEventListener('abort', () => fail(new Error('client went away')), { once: true });
      req.pipe(counter).pipe(bb);
    });
  }

  async function respond(
    form: Form,
    rec: OpenAIRequestRecord,
    send: (status: number, body: string | Buffer, contentType: string) => Promise<void>,
    refuse: (e: ErrorSpec) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    const field = (name: string) => form.fields[name]?.[0];
    if (!form.file) {
      if (mode === 'speaches') {
        // FastAPI validation error shape.
        rec.status = 422;
        return send(422, JSON.stringify({ detail: [{ type: 'missing', loc: ['body', 'file'], msg: 'Field required', input: null }] }), 'application/json');
      }
      return refuse({ status: 400, message: mode === 'whisper.cpp' ? "no 'file' field in the request" : "1 validation error for Request\nbody -> file\n  field required (type=value_error.missing)", param: 'file' });
    }
    const model = field('model');
    if (rules.requireModel && !model) {
      if (mode === 'speaches') {
        return send(422, JSON.stringify({ detail: [{ type: 'missing', loc: ['body', 'model'], msg: 'Field required', input: null }] }), 'application/json');
      }
      return refuse({ status: 400, message: 'you must provide a model parameter', param: 'model' });
    }
    if (mode === 'speaches' && model && !installed.has(model)) {
      return refuse({ status: 404, message: `Model '${model}' is not installed locally. You can download the model using \`POST /v1/models\`` });
    }
    const ext = extname(form.file.filename).slice(1).toLowerCase();
    if (rules.checkExtension && !(OPENAI_FILE_EXTENSIONS as readonly string[]).includes(ext)) {
      return refuse({ status: 400, message: `Invalid file format. Supported formats: ${JSON.stringify(OPENAI_FILE_EXTENSIONS).replace(/"/g, "'").replace(/,/g, ', ')}` });
    }
    const format = (field('response_format') ?? 'json') as ResponseFormat;
    if (!(OPENAI_RESPONSE_FORMATS as readonly string[]).includes(format)) {
      return refuse({ status: 400, message: `'${format}' is not one of ${JSON.stringify(OPENAI_RESPONSE_FORMATS).replace(/"/g, "'").replace(/,/g, ', ')} - 'response_format'`, param: 'response_format' });
    }
    if (rules.checkModelFormats && model && /^gpt-4o(-mini)?-transcribe/.test(model) && format !== 'json' && format !== 'text') {
      return refuse({ status: 400, message: `response_format '${format}' is not compatible with model '${model}'. Use 'json' or 'text' instead.`, param: 'response_format', code: 'unsupported_value' });
    }
    const language = (field('language') ?? 'en').toLowerCase();
    if (mode === 'openai' && field('language') !== undefined && !/^[a-z]{2}$/.test(language)) {
      return refuse({ status: 400, message: `Invalid language '${language}'. Language parameter must be specified in ISO-639-1 format.`, param: 'language', code: 'invalid_language_format' });
    }
    // speaches reads only the bracketed key (§5.1); the others accept both spellings.
    const granularities = [...(form.fields['timestamp_granularities[]'] ?? []), ...(mode === 'speaches' ? [] : (form.fields['timestamp_granularities'] ?? []))];
    const temperature = Number(field('temperature') ?? 0) || 0;

    let result: SphinxResult;
    const release = mode === 'whisper.cpp' ? await mutex.lock() : () => {};
    try {
      inference.inFlight += 1;
      inference.max = Math.max(inference.max, inference.inFlight);
      if (opts.serviceTimeMs !== undefined) {
        await Promise.race([delay(opts.serviceTimeMs), new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(new Error('client went away')), { once: true }))]);
        result = { finals: [], duration: form.file.bytes / 32_000 };
      } else {
        result = await recognise(form.file.path, rec.id, signal);
      }
    } catch (e) {
      if (signal.aborted) throw e;
      if (e instanceof HttpRefusal) throw e;
      if ((e as { code?: string }).code === 'DECODE_FAILED' || (e as { code?: string }).code === 'EMPTY_DECODE') {
        if (mode === 'whisper.cpp') return refuse({ status: 400, message: 'failed to read audio data' });
        return refuse({ status: 400, message: 'Audio file might be corrupted or unsupported', param: 'file', code: 'invalid_value' });
      }
      throw e;
    } finally {
      inference.inFlight -= 1;
      release();
    }
    const verbose = toOpenAIVerboseJson(result, { language, temperature, words: granularities.includes('word') });
    switch (format) {
      case 'json':
        return send(200, JSON.stringify({ text: verbose.text, usage: verbose.usage }), 'application/json');
      case 'text':
        return send(200, `${verbose.text}\n`, 'text/plain; charset=utf-8');
      case 'srt':
        return send(200, subtitles(verbose.segments, 'srt'), 'text/plain; charset=utf-8');
      case 'vtt':
        return send(200, subtitles(verbose.segments, 'vtt'), 'text/plain; charset=utf-8');
      case 'verbose_json':
        return send(200, JSON.stringify(verbose), 'application/json');
    }
  }

  /** ffmpeg decode → recogniser; honours the socket-drop fault after N ms of audio. */
  async function recognise(file: string, id: string, signal: AbortSignal): Promise<SphinxResult> {
    const session = openRecogniser();
    const kill = () => session.kill();
    signal.addEventListener('abort', kill, { once: true });
    const dropAt = handle.faults.dropAfterAudioMs;
    if (dropAt !== undefined) delete handle.faults.dropAfterAudioMs;
    let audioBytes = 0;
    try {
      for await (const pcm of decodeToPcm(createReadStream(file), { signal })) {
        audioBytes += pcm.length;
        if (dropAt !== undefined && audioBytes / 32 >= dropAt) {
          const rec = requests.find((r) => r.id === id);
          if (rec) rec.status = -1;
          dropSocket(id);
          throw new Error('socket dropped by fault hook');
        }
        await session.write(pcm);
      }
      return await session.end();
    } finally {
      signal.removeEventListener('abort', kill);
      session.kill();
    }
  }

  const liveSockets = new Map<string, Socket>();
  function dropSocket(id: string): void {
    liveSockets.get(id)?.destroy();
  }

  const server: Server = createServer((req, res) => {
    if (handleControlRequest(req, res, { provider: 'openai', concurrency, faultPlan })) return;
    const id = `req_${randomBytes(16).toString('hex')}`;
    liveSockets.set(id, req.socket);
    res.once('close', () => liveSockets.delete(id));
    handleRequest(req, res, id).catch((e: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify(errorBody({ status: 500, message: (e as Error).message, type: 'server_error' })));
      }
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${opts.host ?? '127.0.0.1'}:${port}`;
  Object.assign(handle, {
    url,
    port,
    endpoint: `${url}${path}`,
    baseUrl: path.endsWith('/audio/transcriptions') ? `${url}${path.slice(0, -'/audio/transcriptions'.length)}` : url,
  });
  return handle;
}
