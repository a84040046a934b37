/**
 * Emulator of the OpenAI-compatible batch API `POST /v1/audio/transcriptions` (providers.md §5, §7.6),
 * with two self-hosted variants: whisper.cpp's `whisper-server` and speaches (§5.4).
 *
 * The multipart body is parsed as it streams in (multipart.ts); the file part is spooled to a temp file
 * while the whole body is counted, then decoded with ffmpeg and fed to the local recogniser on one of
 * the emulator's recognisers (transcribe.ts: queued while all are busy), so the transcript and its word
 * times are real (audio time).
 *
 * Strict by default (each rule is a switch in `rules`; rules.ts):
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
 * Scripted faults (`faultSpecs` / `--fault`, kit/faults.ts), on requests that passed auth (error bodies
 * in the mode's shape): `429-storm` → the cap's 429 `rate_limit_exceeded` with Retry-After and
 * `x-ratelimit-*`; `5xx[=S]` → S (default 503 "The server is overloaded or not ready yet.",
 * `server_error`); `never-answer` → the request takes its slot, the body is read, nothing is sent;
 * `drop-after=S` → the same, then the socket is destroyed S s after the request started;
 * `early=STATUS` → STATUS (401 invalid_api_key, 402/429 as above, 413 the size-limit message, 5xx
 * server_error) written before the body is read, then the connection is closed.
 *
 * `serviceTimeMs`: benchmark mode — after the form checks, no decoding or recognition (no recogniser
 * taken): the request is held this many ms (whisper.cpp mode still one at a time) and answered with an
 * empty transcript whose duration is estimated from the file size as 16 kHz s16le.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ConcurrencyTracker } from '../kit/concurrency';
import { handleControlRequest } from '../kit/control';
import { answerBeforeBody, FaultPlan, holdRequest, type FaultHit } from '../kit/faults';
import { FrameLog } from '../kit/frame-log';
import { RecogniserPool } from '../kit/recogniser-pool';
import { startHttpServer } from '../kit/server';
import { renderTranscript } from './formats';
import { readForm } from './multipart';
import { authenticate, checkForm, earlyError, errorBody, QUOTA_EXCEEDED, rateLimited, resolveConfig, serverError, tooLarge, undecodable } from './rules';
import { Transcriber } from './transcribe';
import { HttpRefusal, type ErrorSpec, type OpenAIEmulatorHandle, type OpenAIEmulatorOptions, type OpenAIRequestRecord } from './types';

type Send = (status: number, body: string | Buffer, contentType: string, headers?: Record<string, string>) => Promise<void>;

export async function startOpenAIEmulator(opts: OpenAIEmulatorOptions = {}): Promise<OpenAIEmulatorHandle> {
  const cfg = resolveConfig(opts);
  const { mode, rules } = cfg;
  const concurrency = new ConcurrencyTracker(cfg.capFor);
  const frames = new FrameLog();
  const spool = await mkdtemp(join(tmpdir(), 'openai-emulator-'));
  const requests: OpenAIRequestRecord[] = [];
  const events = new EventEmitter();
  const faultPlan = new FaultPlan(['rest'], opts.faultSpecs ?? []);
  const pool = opts.recognisers instanceof RecogniserPool ? opts.recognisers : new RecogniserPool(opts.recognisers);
  const liveSockets = new Map<string, Duplex>();
  const transcriber = new Transcriber({
    mode,
    pool,
    serviceTimeMs: opts.serviceTimeMs,
    events,
    faults: () => handle.faults,
    dropSocket: (rec) => liveSockets.get(rec.id)?.destroy(),
  });

  const http = await startHttpServer({
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    ...(opts.host !== undefined ? { host: opts.host } : {}),
    ...(opts.tls ? { tls: opts.tls } : {}),
    onRequest: (req, res) => {
      if (handleControlRequest(req, res, { provider: 'openai', concurrency, faultPlan, recognisers: pool })) return;
      const id = `req_${randomBytes(16).toString('hex')}`;
      liveSockets.set(id, req.socket);
      res.once('close', () => liveSockets.delete(id));
      handleRequest(req, res, id).catch((e: unknown) => {
        if (!res.headersSent && !res.destroyed) {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify(errorBody(mode, { status: 500, message: (e as Error).message, type: 'server_error' })));
        }
      });
    },
  });
  const url = http.url;
  const handle: OpenAIEmulatorHandle = {
    name: 'openai',
    mode,
    url,
    port: http.port,
    endpoint: `${url}${cfg.path}`,
    baseUrl: cfg.path.endsWith('/audio/transcriptions') ? `${url}${cfg.path.slice(0, -'/audio/transcriptions'.length)}` : url,
    concurrency,
    frames,
    faults: { ...opts.faults },
    faultPlan,
    quotaExceeded: opts.quotaExceeded ?? false,
    inference: transcriber.inference,
    recognisers: pool,
    requests,
    events,
    close: async () => {
      await http.close();
      await rm(spool, { recursive: true, force: true });
    },
  };

  /** `never-answer` / `drop-after`: the request holds its slot, its body is read, nothing is sent. */
  async function holdFaulted(hit: FaultHit, req: IncomingMessage, res: ServerResponse, rec: OpenAIRequestRecord, startedAt: number): Promise<void> {
    req.on('data', (d: Buffer) => (rec.bodyBytes += d.length));
    const { dropped } = await holdRequest(hit, req, res, startedAt);
    rec.status = dropped ? -1 : 499;
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
    const closed = new Promise<void>((r) => res.once('close', r));
    frames.record({ session: id, direction: 'in', kind: 'http', size: 0, type: `${req.method} ${req.url}` });
    try {
      await serve(req, res, rec, startedAt);
    } finally {
      // 'done' once the response is closed (slot released) and the handling is over (status final).
      void closed.then(() => setImmediate(() => events.emit('done', rec)));
    }
  }

  async function serve(req: IncomingMessage, res: ServerResponse, rec: OpenAIRequestRecord, startedAt: number): Promise<void> {
    const id = rec.id;
    const send: Send = async (status, body, contentType, headers = {}) => {
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
    const refuse = (e: ErrorSpec) => send(e.status, JSON.stringify(errorBody(mode, e)), 'application/json', e.headers);

    const path = new URL(req.url ?? '/', 'http://emulator').pathname;
    if (req.method !== 'POST' || path !== cfg.path) {
      return refuse({ status: 404, message: `Invalid URL (${req.method} ${path})` });
    }

    // ---- gateway checks, answered without reading the body (Node drains it) ------------------
    const auth = authenticate(cfg, req);
    if ('refusal' in auth) return refuse(auth.refusal);
    const key = auth.key;
    rec.key = key;
    if (handle.quotaExceeded) return refuse(QUOTA_EXCEEDED);
    const hit = faultPlan.take('rest');
    if (hit?.kind === '429-storm') {
      concurrency.noteRefusal(key);
      return refuse(rateLimited(cfg, key));
    }
    if (hit?.kind === '5xx') return refuse(serverError(hit.status));
    if (hit?.kind === 'early') {
      const e = earlyError(cfg, hit.status!, key, req);
      const body = JSON.stringify(errorBody(mode, e));
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
      return refuse(rateLimited(cfg, key));
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
    if (hit) return holdFaulted(hit, req, res, rec, startedAt);
    try {
      if (handle.faults.neverAnswer) {
        delete handle.faults.neverAnswer;
        req.resume();
        await new Promise<void>((r) => res.once('close', r));
        rec.status = 499;
        return;
      }
      const form = await readForm(req, rec, {
        spool,
        limit: rules.enforceSizeLimit ? cfg.maxUpload : Number.POSITIVE_INFINITY,
        onChunk: (size) => frames.record({ session: id, direction: 'in', kind: 'http', size, type: 'body' }),
        signal: abort.signal,
      });
      if (form.over) return refuse(tooLarge(cfg, form.bodyBytes));
      try {
        await respond(form.fields, form.file, rec, send, refuse, abort.signal);
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

  /** The form checks, the transcription, and the answer in the asked format. */
  async function respond(
    fields: Record<string, string[]>,
    file: { path: string; filename: string; bytes: number } | undefined,
    rec: OpenAIRequestRecord,
    send: Send,
    refuse: (e: ErrorSpec) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    const params = checkForm(cfg, fields, file?.filename);
    if ('error' in params) return refuse(params.error);
    if ('body' in params) return send(params.status, JSON.stringify(params.body), 'application/json');
    let result;
    try {
      result = await transcriber.run(file!, rec, signal);
    } catch (e) {
      if (signal.aborted) throw e;
      const code = (e as { code?: string }).code;
      if (code === 'DECODE_FAILED' || code === 'EMPTY_DECODE') return refuse(undecodable(cfg));
      throw e;
    }
    const { body, contentType } = renderTranscript(result, params.format, params);
    return send(200, body, contentType);
  }

  return handle;
}
