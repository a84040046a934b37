/**
 * Emulator of Deepgram speech-to-text: pre-recorded `POST /v1/listen` (providers.md §1, §7.2) and live
 * `GET /v1/listen` WebSocket (§2, §7.3) on one HTTP server. Transcripts are real: the audio is decoded
 * (ffmpeg for containers) and fed to the local recogniser, word times in audio seconds.
 *
 * Pre-recorded (§7.2):
 * - Auth `Authorization: Token <key>` (or `Bearer <access token>`), else 401 legacy
 *   `{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials.","request_id"}`.
 * - Body: binary (any container ffmpeg sniffs; raw `linear16`/`mulaw` with `encoding` +
 *   `sample_rate`) or `Content-Type: application/json` `{"url"}` which the emulator fetches itself
 *   (malformed JSON → 400 modern `INVALID_JSON`; no `url` → 400; fetch failure → 400
 *   `REMOTE_CONTENT_ERROR`). Undecodable bytes (incl. JSON sent without the JSON content type) → 400
 *   "failed to process audio: corrupt or unsupported data".
 * - Body > `maxBodyBytes` (default 2 GiB) → 413; client gone mid-upload → 422 (recorded; the client
 *   cannot read it); processing beyond `maxProcessingMs` (10 min, 20 min for `whisper*`) after the
 *   upload ended → 504; `outOfCredits` → 402 `ASR_PAYMENT_REQUIRED`; bad query values → 400.
 * - Concurrency is per PROJECT (keys map to projects): in flight > cap → 429 (default 100, 5 for
 *   `whisper*` models). Never queued.
 * - 200 body per §1.3; `punctuated_word` only with punctuate/smart_format, `speaker` only with
 *   diarize/diarize_model, `utterances`/`paragraphs` only when asked, one channel per input channel
 *   only with `multichannel=true`. Every response carries `dg-request-id`; errors also `dg-error`.
 * - Error bodies use the documented shape per error; `errorShape` forces one shape or rotates
 *   legacy → modern → text so client parsers get exercised.
 * - Not implemented: `callback` (async) mode → 400 (documented as out of scope for this emulator).
 *
 * Live (§7.3):
 * - Handshake failures are plain HTTP with `dg-request-id` + `dg-error` (body = the same text): 401 bad
 *   or missing key (also a key without the `Token ` scheme), 400 bad params (unknown `encoding`,
 *   `encoding` without `sample_rate`, `diarize_model=v2`, `utterance_end_ms` < 1000 or without
 *   `interim_results`, Whisper models), 402 out of credits, 429 over the per-project stream cap
 *   (default 50). Success is 101 with `dg-request-id`; subprotocol auth `token,<key>` is accepted.
 * - Idle: no audio within `idleTimeoutMs` (default 10 000) of open — KeepAlive does not count before
 *   the first audio — then no frame of any kind for `idleTimeoutMs` → close 1011 NET-0001.
 * - Empty binary frame → close 1008 "DATA-0000 … empty binary frame" and the session is flagged
 *   `clientBugs: ['empty-binary-frame']` (option `emptyFrame: 'end-of-stream'` gives the legacy
 *   end-of-stream meaning instead). JSON in a binary frame on a raw encoding, or a container ffmpeg
 *   cannot decode → close 1008 DATA-0000. Invalid JSON / non-object / unknown `type` in a text frame →
 *   close 1011 "Invalid frame sent" (the starter kit mock's behaviour; real code UNCONFIRMED).
 * - Results in audio time (`start`/`duration`, contiguous), `is_final` finals, `speech_final` on the
 *   recogniser's end-of-speech finals (unless `endpointing=false`), interims about every
 *   `interimEveryMs` of audio with `interim_results=true`, `SpeechStarted` with `vad_events`,
 *   `UtteranceEnd` with `utterance_end_ms`. `Finalize` flushes (finals with `from_finalize:true`),
 *   `CloseStream` → remaining finals → exactly one `Metadata` (sha256 of the received audio bytes,
 *   duration, channels; 0/0 without audio) → close 1000; frames after CloseStream are ignored.
 * - Pacing: audio reaches the recogniser at most `maxRealtimeFactor` (1.25×) real time plus a
 *   `burstAllowanceMs` head start; anything faster is buffered and results lag (the documented
 *   ceiling; the real over-rate behaviour is undocumented). With `strictPacing: true` a client whose
 *   received audio exceeds 1.25 × wall time since its first audio frame + `burstAllowanceMs` (2 s) is
 *   closed with **1008** and reason "Audio sent faster than real time: …" (emulator-specific: no real
 *   close code exists; 1008 = policy violation, so clients treat it as a non-retryable bug).
 * - Faults (common FaultHooks + `net0000AfterAudioMs`): 503 at handshake/REST, slow first byte, never
 *   answer, abrupt drop after N ms of audio (client sees 1006), close 1011 NET-0000 after N ms of audio.
 * - Scripted faults (`faultSpecs` / `--fault`, common.ts): `429-storm` → REST 429 / handshake HTTP 429
 *   (legacy TOO_MANY_REQUESTS body, `dg-error`, `Retry-After`: `retryAfterSeconds`, default 1);
 *   `5xx[=S]` → REST / handshake HTTP S (default 503 "Please try again later."); `never-answer` →
 *   REST: the request takes its slot, the body is read, nothing is sent; live: 101, audio accepted,
 *   nothing ever sent (no Results, no Metadata, no close, no idle close); `drop-after=S` → REST: like
 *   never-answer, then the socket is destroyed S s after the request started; live: a normal session
 *   whose socket is destroyed S s after the handshake (1006); `early=STATUS` (REST only) → STATUS with
 *   the documented body for it, written before the body is read, then the connection is closed.
 * - `serviceTimeMs`: pre-recorded benchmark mode (below); a number or `live` also delays the
 *   end-of-stream answer to CloseStream (final Results → Metadata → close) by that many ms.
 * - Not implemented: live `multichannel` (audio is downmixed, `channel_index` is always [0, 1]);
 *   decoding of `alaw`, `linear32`, raw `opus`, `speex`, `g729` (accepted at handshake, the audio is
 *   then refused with 1008 DATA-0000).
 *
 * Concurrency keys: `handle.concurrency` counts, per project, every session in flight (key
 * `<project>`) and per pool (key `<project>/prerecorded`, `<project>/whisper`, `<project>/live`, where
 * the caps are enforced and refusals counted). Use `poolKey()` to build them.
 */
import { execFile } from 'node:child_process';
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { decodeToPcm } from '@scribe-fleet/core/adapters/s3/ffmpeg-decoder';
import type { SphinxSession } from '@scribe-fleet/core/adapters/sphinx-recogniser';
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
import { closeReason, FlushableRecogniser, PcmConverter, RateMonitor, refuseUpgrade, startWsServer, type RecognisedUtterance } from './streaming-support';

const run = promisify(execFile);

// ---- options and records ---------------------------------------------------------------------------

export type DeepgramPool = 'prerecorded' | 'whisper' | 'live';
export type ErrorShape = 'legacy' | 'modern' | 'text';

export interface DeepgramFaults extends FaultHooks {
  /** Close the next live session with 1011 NET-0000 after this many ms of received audio. */
  net0000AfterAudioMs?: number;
}

export interface DeepgramEmulatorOptions {
  port?: number;
  host?: string;
  /** API key → project id (`Authorization: Token <key>` or subprotocols `token,<key>`). */
  keys?: Record<string, string>;
  /** Access token (JWT) → project id (`Authorization: Bearer <token>` or subprotocols `bearer,<token>`). */
  accessTokens?: Record<string, string>;
  /** Concurrency caps per project and pool (defaults: prerecorded 100, whisper 5, live 50). */
  caps?: Partial<Record<DeepgramPool, number>>;
  /** Per-project overrides of `caps`. */
  projectCaps?: Record<string, Partial<Record<DeepgramPool, number>>>;
  /** Pre-recorded body limit (default 2 GiB) → 413. */
  maxBodyBytes?: number;
  /** Processing cap after the upload ended (default 10 min; Whisper 20 min) → 504. */
  maxProcessingMs?: number;
  whisperMaxProcessingMs?: number;
  /** Answer 402 ASR_PAYMENT_REQUIRED to everything (REST and handshake). */
  outOfCredits?: boolean;
  /** Force one error-body shape, or `rotate` through all three. Default: the documented shape per error. */
  errorShape?: ErrorShape | 'rotate';
  /** Seconds for a `Retry-After` header on 429 (Deepgram documents none; off by default). */
  retryAfterSeconds?: number;
  /** Timeout of the emulator's own fetch of a `{"url"}` source. */
  remoteFetchTimeoutMs?: number;
  /** Live: idle window (default 10 000 ms). */
  idleTimeoutMs?: number;
  /** Live: ingest ceiling as a multiple of real time (default 1.25). */
  maxRealtimeFactor?: number;
  /** Live: close clients faster than `maxRealtimeFactor` (+ burst) with 1008 (default false: buffer). */
  strictPacing?: boolean;
  /** Live: audio a client may be ahead of the ceiling, ms (default 2000). */
  burstAllowanceMs?: number;
  /** Live: what an empty binary frame does (default `error`: close 1008 and flag a client bug). */
  emptyFrame?: 'error' | 'end-of-stream';
  /** Live: reject `utterance_end_ms` < 1000 or without `interim_results` at the handshake (default true). */
  strictUtteranceEnd?: boolean;
  /** Live: interim period in ms of audio (default 1000). */
  interimEveryMs?: number;
  faults?: DeepgramFaults;
  /** Scripted faults (`--fault` grammar, common.ts); switchable at run time via `faultPlan` or `/_emulator/faults`. */
  faultSpecs?: ReadonlyArray<string | FaultSpec>;
  /**
   * Benchmark mode for pre-recorded requests: skip recognition, read the whole body, hold the request
   * for this fixed service time and answer an empty transcript (duration estimated as 16 kHz s16le).
   * Caps, auth and the concurrency tracker behave exactly as in normal mode. For live sessions (a
   * number, or the `live` entry) it is the delay between CloseStream and the final Results/Metadata.
   */
  serviceTimeMs?: number | Partial<Record<DeepgramPool, number>>;
}

export type ResolvedDeepgramOptions = Required<Omit<DeepgramEmulatorOptions, 'port' | 'host' | 'faults' | 'faultSpecs' | 'errorShape' | 'retryAfterSeconds' | 'serviceTimeMs'>> &
  Pick<DeepgramEmulatorOptions, 'errorShape' | 'retryAfterSeconds' | 'serviceTimeMs'>;

/** One pre-recorded request as the emulator saw it. */
export interface DeepgramRestRecord {
  requestId: string;
  project?: string;
  model: string;
  pool?: DeepgramPool;
  body?: 'binary' | 'url';
  /** Body bytes received (binary) or fetched (url). */
  bytes: number;
  /** HTTP status answered; 422 = client left mid-upload; 499 = client left after the upload. */
  status?: number;
  errCode?: string;
  startedAt: number;
  endedAt?: number;
}

/** One live session (or refused handshake) as the emulator saw it. */
export interface DeepgramLiveRecord {
  requestId: string;
  project?: string;
  model: string;
  query: Record<string, string>;
  /** HTTP status of a refused handshake (absent when the upgrade succeeded). */
  handshakeStatus?: number;
  openedAt: number;
  firstAudioAt?: number;
  audioBytes: number;
  /** Decoded audio seconds received so far. */
  audioSeconds: number;
  closeStreamAt?: number;
  metadataSent: boolean;
  /** Frames that arrived after CloseStream (ignored). */
  ignoredFrames: number;
  closeCode?: number;
  closeReason?: string;
  closedBy?: 'server' | 'client' | 'drop';
  /** Protocol misuse the emulator noticed: `empty-binary-frame`, `json-in-binary-frame`, `too-fast`, `idle`. */
  clientBugs: string[];
  /** Max seconds the client was ahead of real time (received audio − wall time since first audio). */
  maxAheadSeconds: number;
  done: boolean;
}

export interface DeepgramEmulatorHandle extends EmulatorHandle {
  /** ws://127.0.0.1:port */
  readonly wsUrl: string;
  /** The resolved options; mutable at run time (e.g. flip `outOfCredits`, `strictPacing`, caps). */
  readonly options: ResolvedDeepgramOptions;
  faults: DeepgramFaults;
  readonly requests: DeepgramRestRecord[];
  readonly sessions: DeepgramLiveRecord[];
  /**
   * Emits `admitted` (DeepgramRestRecord, when a request took a concurrency slot), `request`
   * (DeepgramRestRecord, when answered) and `session` (DeepgramLiveRecord, when done).
   */
  readonly events: EventEmitter;
  /** The first answered request matching `pred` (already answered or the next one). */
  waitForRequest(pred: (r: DeepgramRestRecord) => boolean, timeoutMs?: number): Promise<DeepgramRestRecord>;
  /** The first finished live session (or refused handshake) matching `pred`. */
  waitForSession(pred: (s: DeepgramLiveRecord) => boolean, timeoutMs?: number): Promise<DeepgramLiveRecord>;
}

export const DEEPGRAM_DEFAULT_CAPS: Record<DeepgramPool, number> = { prerecorded: 100, whisper: 5, live: 50 };

export function poolKey(project: string, pool: DeepgramPool): string {
  return `${project}/${pool}`;
}

/** §2.6 reason texts (observed texts carry the sentence and link; the bare code is prefixed so both match). */
export const NET0001_REASON = 'NET-0001: Deepgram did not receive audio data or a text message within the timeout window. See https://dpgr.am/net0001';
export const NET0000_REASON = 'NET-0000: Deepgram did not provide a response message within the timeout window. See https://dpgr.am/net0000';
export const PACING_CLOSE_CODE = 1008;

const REST_BOOLEANS = [
  'punctuate', 'smart_format', 'diarize', 'utterances', 'paragraphs', 'multichannel', 'numerals', 'measurements', 'dictation',
  'filler_words', 'profanity_filter', 'sentiment', 'topics', 'intents', 'detect_entities', 'mip_opt_out',
];
const LIVE_BOOLEANS = [
  'punctuate', 'smart_format', 'diarize', 'multichannel', 'numerals', 'profanity_filter', 'dictation', 'detect_entities',
  'interim_results', 'vad_events', 'mip_opt_out', 'no_delay', 'filler_words', 'measurements',
];
const REST_ENCODINGS = ['linear16', 'flac', 'mulaw', 'amr-nb', 'amr-wb', 'opus', 'speex', 'g729'];
const LIVE_ENCODINGS = ['linear16', 'linear32', 'flac', 'alaw', 'mulaw', 'amr-nb', 'amr-wb', 'opus', 'ogg-opus', 'speex', 'g729'];
/** Encodings that are headered streams ffmpeg can sniff; linear16/mulaw are converted in-process. */
const SNIFFED_ENCODINGS = ['flac', 'amr-nb', 'amr-wb', 'ogg-opus'];
const REST_REDACT = ['pci', 'pii', 'numbers', 'true', 'false'];
const LIVE_REDACT = ['true', 'false', 'pci', 'numbers', 'aggressive_numbers', 'ssn', 'pii'];

const PCM_BPS = 32_000; // 16 kHz mono s16le, the recogniser's input

// ---- errors ----------------------------------------------------------------------------------------

class DgError extends Error {
  constructor(
    readonly status: number,
    readonly errCode: string,
    message: string,
    readonly shape: ErrorShape = 'legacy',
    readonly details?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const badRequest = (message: string, errCode = 'Bad Request') => new DgError(400, errCode, message);
const CORRUPT = () => badRequest('Bad Request: failed to process audio: corrupt or unsupported data');

// ---- helpers -----------------------------------------------------------------------------------------

function isTrue(q: URLSearchParams, key: string): boolean {
  return q.get(key) === 'true';
}

function isWhisper(model: string): boolean {
  return model.startsWith('whisper');
}

/** A stable uuid-shaped id per model name (Deepgram reports model uuids, §1.3). */
function modelUuid(model: string): string {
  const h = createHash('sha256').update(`deepgram-emulator:${model}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function modelInfo(model: string): { name: string; version: string; arch: string } {
  const arch = /^(nova-3|nova-2|nova|enhanced|base|whisper)/.exec(model)?.[1] ?? 'base';
  return { name: model, version: '2025-01-01.0', arch };
}

function round(x: number, places = 3): number {
  return Math.round(x * 10 ** places) / 10 ** places;
}

function queryRecord(q: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of q) out[k] = k in out ? `${out[k]},${v}` : v;
  return out;
}

/** §1.2 / §2.2 validation shared by both endpoints; throws a 400 DgError. */
function validateQuery(q: URLSearchParams, live: boolean, strictUtteranceEnd: boolean): void {
  const bad = (param: string, value: string) =>
    badRequest(`Invalid query parameter \`${param}\`: ${JSON.stringify(value)} is not a valid value.`, 'INVALID_QUERY_PARAMETER');
  for (const key of live ? LIVE_BOOLEANS : REST_BOOLEANS) {
    for (const v of q.getAll(key)) if (v !== 'true' && v !== 'false') throw bad(key, v);
  }
  const enc = q.get('encoding');
  if (enc !== null && !(live ? LIVE_ENCODINGS : REST_ENCODINGS).includes(enc)) throw bad('encoding', enc);
  for (const key of ['sample_rate', 'channels']) {
    const v = q.get(key);
    if (v !== null && !/^[1-9]\d*$/.test(v)) throw bad(key, v);
  }
  for (const v of q.getAll('redact')) for (const part of v.split(',')) if (!(live ? LIVE_REDACT : REST_REDACT).includes(part)) throw bad('redact', v);
  const dm = q.get('diarize_model');
  if (dm !== null && !(live ? ['latest', 'v1'] : ['latest', 'v1', 'v2']).includes(dm)) throw bad('diarize_model', dm);
  const model = q.get('model');
  if (model !== null && !/^[A-Za-z0-9][A-Za-z0-9._:-]*$/.test(model)) throw bad('model', model);
  if (!live) {
    const us = q.get('utt_split');
    if (us !== null && !(Number(us) >= 0)) throw bad('utt_split', us);
    return;
  }
  // Live-only rules (§2.2, §7.3).
  if (enc !== null && q.get('sample_rate') === null) {
    throw badRequest('Bad Request: `sample_rate` is required when `encoding` is specified.', 'INVALID_QUERY_PARAMETER');
  }
  const ep = q.get('endpointing');
  if (ep !== null && ep !== 'false' && ep !== 'true' && !/^\d+$/.test(ep)) throw bad('endpointing', ep);
  const ue = q.get('utterance_end_ms');
  if (ue !== null) {
    if (!/^\d+$/.test(ue)) throw bad('utterance_end_ms', ue);
    if (strictUtteranceEnd && Number(ue) < 1000) throw badRequest('Bad Request: `utterance_end_ms` must be at least 1000.', 'INVALID_QUERY_PARAMETER');
    if (strictUtteranceEnd && !isTrue(q, 'interim_results')) {
      throw badRequest('Bad Request: `utterance_end_ms` requires `interim_results=true`.', 'INVALID_QUERY_PARAMETER');
    }
  }
  if (model !== null && isWhisper(model)) throw badRequest('Bad Request: Whisper models are not available for streaming.', 'INVALID_QUERY_PARAMETER');
}

interface AuthResult {
  project: string;
}

/**
 * §1.1/§2.1: `Token <key>` or `Bearer <token>` in the Authorization header, or (live) subprotocols
 * `token,<key>` / `bearer,<token>`. A key without a scheme is refused (the iOS issue in §2.1).
 */
function authenticate(req: IncomingMessage, opts: ResolvedDeepgramOptions, allowSubprotocol: boolean): AuthResult | null {
  const header = bearerOrToken(req.headers.authorization);
  let scheme = header?.scheme.toLowerCase();
  let credential = header?.credential;
  if (!header && allowSubprotocol && typeof req.headers['sec-websocket-protocol'] === 'string') {
    const parts = req.headers['sec-websocket-protocol'].split(',').map((p) => p.trim());
    scheme = parts[0]?.toLowerCase();
    credential = parts[1];
  }
  if (!credential) return null;
  if (scheme === 'token' && opts.keys[credential]) return { project: opts.keys[credential]! };
  if (scheme === 'bearer' && opts.accessTokens[credential]) return { project: opts.accessTokens[credential]! };
  return null;
}

/** Pass-through that hashes and counts bytes and refuses more than `max` (→ 413). */
class BodyTap extends Transform {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;
  digest = '';
  constructor(
    private readonly max: number,
    private readonly onTooLarge: () => void,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.max) {
      this.onTooLarge();
      cb(new DgError(413, 'PAYLOAD_TOO_LARGE', `Payload Too Large: the request body exceeds the maximum of ${this.max} bytes.`, 'text'));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    this.digest = this.hash.digest('hex');
    cb();
  }
}

interface ChannelResult {
  finals: RecognisedUtterance[];
  duration: number;
}

/** Feed PCM chunks to one recogniser session; resolves with its finals and the audio duration. */
async function recognise(pcm: AsyncIterable<Buffer>, signal: AbortSignal): Promise<ChannelResult> {
  const session: SphinxSession = openRecogniser({ partialMs: 0 });
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
async function fixedService(body: Readable, serviceTimeMs: number, signal: AbortSignal): Promise<ChannelResult> {
  let bytes = 0;
  for await (const chunk of body) bytes += (chunk as Buffer).length;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, serviceTimeMs);
    signal.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason)), { once: true });
  });
  return { finals: [], duration: bytes / PCM_BPS };
}

/** Raw `linear16`/`mulaw` body (REST `encoding=` for headerless audio) → 16 kHz PCM. */
async function* convertRaw(input: AsyncIterable<Buffer>, encoding: 'linear16' | 'mulaw', sampleRate: number): AsyncGenerator<Buffer> {
  const conv = new PcmConverter(sampleRate, encoding === 'mulaw' ? 'pcm_mulaw' : 'pcm_s16le');
  for await (const chunk of input) {
    const out = conv.convert(chunk);
    if (out.length) yield out;
  }
}

/** `multichannel=true`: spool the body, count its channels, transcribe each channel on its own. */
async function recogniseMultichannel(input: Readable, signal: AbortSignal): Promise<ChannelResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'dg-emu-'));
  try {
    const file = join(dir, 'input');
    await pipeline(input, createWriteStream(file), { signal });
    let channels = 1;
    try {
      const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', 'a:0', '-show_entries', 'stream=channels', '-of', 'csv=p=0', file]);
      channels = Math.max(1, parseInt(stdout.trim(), 10) || 1);
    } catch {
      throw CORRUPT();
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

// ---- response building (§1.3) ---------------------------------------------------------------------

interface OutWord {
  word: string;
  start: number;
  end: number;
  confidence: number;
  punctuated_word?: string;
  speaker?: number;
  speaker_confidence?: number;
}

function outWords(u: RecognisedUtterance, punct: boolean, diarize: boolean): OutWord[] {
  const punctuated = punct ? punctuate(u.words.map((w) => w.word)) : [];
  return u.words.map((w, i) => {
    const o: OutWord = { word: w.word, start: round(w.start), end: round(w.end), confidence: round(w.confidence, 4) };
    if (punct) o.punctuated_word = punctuated[i]!;
    if (diarize) {
      o.speaker = 0;
      o.speaker_confidence = 0.9;
    }
    return o;
  });
}

const text = (ws: OutWord[]) => ws.map((w) => w.punctuated_word ?? w.word).join(' ');
const meanConf = (ws: OutWord[]) => (ws.length ? round(ws.reduce((a, w) => a + w.confidence, 0) / ws.length, 4) : 0);

function buildPrerecorded(q: URLSearchParams, model: string, requestId: string, sha256: string, channels: ChannelResult[]): unknown {
  const punct = isTrue(q, 'punctuate') || isTrue(q, 'smart_format');
  const diarize = isTrue(q, 'diarize') || q.get('diarize_model') !== null;
  const detect = q.getAll('detect_language').some((v) => v !== 'false');
  const uuid = modelUuid(model);
  const utterances: unknown[] = [];
  const outChannels = channels.map((ch, c) => {
    const perUtt = ch.finals.map((u) => outWords(u, punct, diarize));
    const words = perUtt.flat();
    const alt: Record<string, unknown> = { transcript: text(words), confidence: meanConf(words), words };
    if (isTrue(q, 'paragraphs')) {
      const paras = perUtt.filter((ws) => ws.length).map((ws) => {
        const p: Record<string, unknown> = {
          sentences: [{ text: text(ws), start: ws[0]!.start, end: ws[ws.length - 1]!.end }],
          num_words: ws.length,
          start: ws[0]!.start,
          end: ws[ws.length - 1]!.end,
        };
        if (diarize) p.speaker = 0;
        return p;
      });
      const body = paras.map((p) => (p.sentences as Array<{ text: string }>)[0]!.text);
      alt.paragraphs = { transcript: `\n${body.map((b) => (diarize ? `Speaker 0: ${b}` : b)).join('\n\n')}`, paragraphs: paras };
    }
    perUtt.forEach((ws) => {
      if (!ws.length) return;
      const u: Record<string, unknown> = {
        id: randomUUID(),
        channel: c,
        start: ws[0]!.start,
        end: ws[ws.length - 1]!.end,
        confidence: meanConf(ws),
        transcript: text(ws),
        words: ws,
      };
      if (diarize) u.speaker = 0;
      utterances.push(u);
    });
    const out: Record<string, unknown> = { alternatives: [alt] };
    if (detect) {
      out.detected_language = 'en';
      out.language_confidence = 0.99;
    }
    return out;
  });
  const metadata: Record<string, unknown> = {
    transaction_key: 'deprecated',
    request_id: requestId,
    sha256,
    created: new Date().toISOString(),
    duration: round(Math.max(0, ...channels.map((c) => c.duration)), 6),
    channels: channels.length,
    models: [uuid],
    model_info: { [uuid]: modelInfo(model) },
  };
  const tags = q.getAll('tag');
  if (tags.length) metadata.tags = tags;
  const results: Record<string, unknown> = { channels: outChannels };
  if (isTrue(q, 'utterances')) results.utterances = (utterances as Array<{ start: number }>).sort((a, b) => a.start - b.start);
  return { metadata, results };
}

// ---- the emulator --------------------------------------------------------------------------------------

export async function startDeepgramEmulator(opts: DeepgramEmulatorOptions = {}): Promise<DeepgramEmulatorHandle> {
  const options: ResolvedDeepgramOptions = {
    keys: opts.keys ?? { 'dg-test-key': 'project-1' },
    accessTokens: opts.accessTokens ?? {},
    caps: { ...DEEPGRAM_DEFAULT_CAPS, ...opts.caps },
    projectCaps: opts.projectCaps ?? {},
    maxBodyBytes: opts.maxBodyBytes ?? 2 * 1024 ** 3,
    maxProcessingMs: opts.maxProcessingMs ?? 10 * 60_000,
    whisperMaxProcessingMs: opts.whisperMaxProcessingMs ?? 20 * 60_000,
    outOfCredits: opts.outOfCredits ?? false,
    remoteFetchTimeoutMs: opts.remoteFetchTimeoutMs ?? 30_000,
    idleTimeoutMs: opts.idleTimeoutMs ?? 10_000,
    maxRealtimeFactor: opts.maxRealtimeFactor ?? 1.25,
    strictPacing: opts.strictPacing ?? false,
    burstAllowanceMs: opts.burstAllowanceMs ?? 2000,
    emptyFrame: opts.emptyFrame ?? 'error',
    strictUtteranceEnd: opts.strictUtteranceEnd ?? true,
    interimEveryMs: opts.interimEveryMs ?? 1000,
  };
  if (opts.errorShape !== undefined) options.errorShape = opts.errorShape;
  if (opts.retryAfterSeconds !== undefined) options.retryAfterSeconds = opts.retryAfterSeconds;
  if (opts.serviceTimeMs !== undefined) options.serviceTimeMs = opts.serviceTimeMs;

  const capFor = (key: string): number => {
    const [project, pool] = key.split('/') as [string, DeepgramPool | undefined];
    if (!pool) return Number.POSITIVE_INFINITY; // the per-project total is only counted
    return options.projectCaps[project]?.[pool] ?? options.caps[pool] ?? DEEPGRAM_DEFAULT_CAPS[pool];
  };
  const concurrency = new ConcurrencyTracker(capFor);
  const frames = new FrameLog();
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const requests: DeepgramRestRecord[] = [];
  const sessions: DeepgramLiveRecord[] = [];
  const live = new Set<LiveSession>();
  const held = new Set<{ destroy(): void }>();
  const faultPlan = new FaultPlan(['rest', 'ws'], opts.faultSpecs ?? []);
  let rotate = 0;

  const handle: DeepgramEmulatorHandle = {
    name: 'deepgram',
    url: '',
    wsUrl: '',
    port: 0,
    concurrency,
    frames,
    options,
    faults: opts.faults ?? {},
    faultPlan,
    requests,
    sessions,
    events,
    waitForRequest: (pred, timeoutMs = 30_000) => waitFor(events, 'request', requests, (r) => r.status !== undefined && pred(r), timeoutMs),
    waitForSession: (pred, timeoutMs = 30_000) => waitFor(events, 'session', sessions, (s) => s.done && pred(s), timeoutMs),
    close: async () => undefined,
  };

  /** Enter the pool and the project total; false when the pool is full. */
  const enter = (project: string, pool: DeepgramPool): boolean => {
    if (!concurrency.enter(poolKey(project, pool))) return false;
    concurrency.enter(project);
    return true;
  };
  const leave = (project: string, pool: DeepgramPool) => {
    concurrency.leave(poolKey(project, pool));
    concurrency.leave(project);
  };

  const errorPayload = (e: DgError, requestId: string): { contentType: string; body: string } => {
    let shape: ErrorShape = options.errorShape && options.errorShape !== 'rotate' ? options.errorShape : e.shape;
    if (options.errorShape === 'rotate') shape = (['legacy', 'modern', 'text'] as const)[rotate++ % 3]!;
    if (shape === 'text') return { contentType: 'text/plain; charset=utf-8', body: e.message };
    const body =
      shape === 'legacy'
        ? { err_code: e.errCode, err_msg: e.message, request_id: requestId }
        : { category: e.errCode, message: e.message, details: e.details ?? e.message, request_id: requestId };
    return { contentType: 'application/json', body: JSON.stringify(body) };
  };

  const rateLimited = (what: string) => {
    const headers: Record<string, string> = {};
    if (options.retryAfterSeconds !== undefined) headers['retry-after'] = String(options.retryAfterSeconds);
    return new DgError(429, 'TOO_MANY_REQUESTS', `Too Many Requests: ${what} concurrency limit reached for this project. Please try again later.`, 'legacy', undefined, headers);
  };
  const paymentRequired = () => new DgError(402, 'ASR_PAYMENT_REQUIRED', 'Payment Required: project does not have enough credits for this request.');
  const unauthorized = () => new DgError(401, 'INVALID_AUTH', 'Invalid credentials.');
  const unavailable = () => new DgError(503, 'SERVICE_UNAVAILABLE', 'Please try again later.', 'text');
  /** `5xx[=S]` faults: 503 is Deepgram's transient answer (§1.4); other statuses get a generic text. */
  const serverError = (status = 503) =>
    status === 503 ? unavailable() : new DgError(status, status === 500 ? 'INTERNAL_SERVER_ERROR' : 'SERVER_ERROR', `${STATUS_CODES[status] ?? 'Server Error'}: please try again later.`, 'text');
  /** `429-storm`: the cap refusal, always with a Retry-After (`retryAfterSeconds`, default 1). */
  const stormLimited = (what: string) => {
    const e = rateLimited(what);
    e.headers['retry-after'] ??= String(options.retryAfterSeconds ?? 1);
    return e;
  };
  /** `early=STATUS`: the documented answer for that status (§1.4). */
  const earlyError = (status: number): DgError => {
    switch (status) {
      case 401:
        return unauthorized();
      case 402:
        return paymentRequired();
      case 413:
        return new DgError(413, 'PAYLOAD_TOO_LARGE', `Payload Too Large: the request body exceeds the maximum of ${options.maxBodyBytes} bytes.`, 'text');
      case 429:
        return stormLimited('pre-recorded');
      default:
        return serverError(status);
    }
  };

  // ---- REST: POST /v1/listen ------------------------------------------------------------------------

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    if (handleControlRequest(req, res, { provider: 'deepgram', concurrency, faultPlan })) return;
    const url = new URL(req.url ?? '/', 'http://emulator');
    if (url.pathname !== '/v1/listen') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ err_code: 'NOT_FOUND', err_msg: 'Not Found' }));
      req.resume();
      return;
    }
    if (req.method !== 'POST') {
      // A GET without Upgrade: the live endpoint needs a WebSocket.
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' }).end('Upgrade Required');
      req.resume();
      return;
    }
    void handleListen(req, res, url.searchParams);
  };

  const handleListen = async (req: IncomingMessage, res: ServerResponse, q: URLSearchParams) => {
    const requestId = randomUUID();
    const model = q.get('model') ?? 'base';
    const rec: DeepgramRestRecord = { requestId, model, bytes: 0, startedAt: performance.now() };
    requests.push(rec);
    frames.record({ session: requestId, direction: 'in', kind: 'http', size: Number(req.headers['content-length'] ?? 0), type: 'POST /v1/listen' });
    let entered: { project: string; pool: DeepgramPool } | undefined;
    let uploadDone = false;
    let clientGone = false;
    const work = new AbortController();
    // §1.4: a client that leaves before the whole body arrived gets 422 (recorded; it cannot read it).
    const gone = () => {
      if (clientGone || res.writableFinished) return;
      clientGone = true;
      work.abort(
        req.complete
          ? new DgError(499, 'CLIENT_CLOSED', 'client closed the connection')
          : new DgError(422, 'ASR_UNPROCESSABLE_ENTITY', 'Unprocessable Entity: the audio upload was incomplete or interrupted.'),
      );
    };
    req.on('close', () => {
      if (!req.complete) gone();
    });
    res.on('close', gone);

    const answer = (status: number, body: string, contentType: string, extra: Record<string, string> = {}) => {
      if (rec.status !== undefined) return;
      rec.status = status;
      rec.endedAt = performance.now();
      if (entered) leave(entered.project, entered.pool);
      entered = undefined;
      frames.record({ session: requestId, direction: 'out', kind: 'http', size: Buffer.byteLength(body), type: String(status) });
      if (!res.headersSent && !res.destroyed) {
        const headers: Record<string, string> = { 'content-type': contentType, 'dg-request-id': requestId, ...extra };
        // Refusing before the body was read: close the connection instead of draining a big upload.
        if (!uploadDone && status !== 200) headers.connection = 'close';
        res.writeHead(status, headers).end(body);
      }
      events.emit('request', rec);
    };
    const fail = (err: unknown) => {
      const e = err instanceof DgError ? err : new DgError(500, 'INTERNAL_SERVER_ERROR', `Internal Server Error: ${(err as Error)?.message ?? String(err)}`, 'text');
      rec.errCode = e.errCode;
      if (e.status === 422 || e.status === 499) {
        // The client is gone: nobody reads this answer, but the record shows what the service would say.
        if (rec.status === undefined) {
          rec.status = e.status;
          rec.endedAt = performance.now();
          if (entered) leave(entered.project, entered.pool);
          entered = undefined;
          events.emit('request', rec);
        }
        return;
      }
      const { contentType, body } = errorPayload(e, requestId);
      answer(e.status, body, contentType, { 'dg-error': e.message.replace(/[\r\n]+/g, ' '), ...e.headers });
      // Let a small unread body drain so the client can read the answer; a large one is cut off.
      if (!req.complete) {
        req.resume();
        const timer = setTimeout(() => req.destroy(), 2000);
        req.once('end', () => clearTimeout(timer));
      }
    };

    /** `early=STATUS`: the answer goes out before the body is read, then the connection closes. */
    const answerEarly = (e: DgError) => {
      const { contentType, body } = errorPayload(e, requestId);
      rec.status = e.status;
      rec.errCode = e.errCode;
      rec.endedAt = performance.now();
      frames.record({ session: requestId, direction: 'out', kind: 'http', size: Buffer.byteLength(body), type: String(e.status) });
      answerBeforeBody(req, e.status, body, { 'Content-Type': contentType, 'dg-request-id': requestId, 'dg-error': e.message.replace(/[\r\n]+/g, ' '), ...e.headers });
      events.emit('request', rec);
    };
    /** `never-answer` / `drop-after`: the request holds its slot, its body is read, nothing is sent. */
    const holdRequest = (hit: FaultHit) => {
      const socket = req.socket;
      held.add(socket);
      req.resume();
      let dropped = false;
      const timer =
        hit.kind === 'drop-after'
          ? setTimeout(() => {
              dropped = true;
              socket.destroy();
            }, msUntil(rec.startedAt, hit.seconds ?? 0))
          : undefined;
      res.once('close', () => {
        clearTimeout(timer);
        held.delete(socket);
        if (rec.status !== undefined) return;
        rec.status = dropped ? -1 : req.complete ? 499 : 422;
        rec.errCode = dropped ? 'FAULT_DROP' : 'CLIENT_CLOSED';
        rec.endedAt = performance.now();
        if (entered) leave(entered.project, entered.pool);
        entered = undefined;
        events.emit('request', rec);
      });
    };

    try {
      const faults = handle.faults;
      if (faults.neverAnswer) {
        held.add(res.socket ?? req.socket);
        req.resume();
        return;
      }
      if (faults.fail5xxTimes && faults.fail5xxTimes > 0) {
        faults.fail5xxTimes -= 1;
        throw unavailable();
      }
      if (faults.slowFirstByteMs && faults.slowFirstByteMs > 0) await sleep(faults.slowFirstByteMs);

      const auth = authenticate(req, options, false);
      if (!auth) throw unauthorized();
      rec.project = auth.project;
      if (options.outOfCredits) throw paymentRequired();
      if (q.get('callback') !== null) throw badRequest('Bad Request: callback mode is not supported by this emulator.');
      validateQuery(q, false, options.strictUtteranceEnd);
      const pool: DeepgramPool = isWhisper(model) ? 'whisper' : 'prerecorded';
      rec.pool = pool;
      const what = pool === 'whisper' ? 'Whisper' : 'pre-recorded';
      const hit = faultPlan.take('rest');
      if (hit?.kind === '429-storm') {
        concurrency.noteRefusal(poolKey(auth.project, pool));
        throw stormLimited(what);
      }
      if (hit?.kind === '5xx') throw serverError(hit.status);
      if (hit?.kind === 'early') return answerEarly(earlyError(hit.status!));
      if (!enter(auth.project, pool)) {
        hit?.refund();
        throw rateLimited(what);
      }
      entered = { project: auth.project, pool };
      events.emit('admitted', rec);
      if (hit) return holdRequest(hit);

      const declared = Number(req.headers['content-length'] ?? NaN);
      if (declared > options.maxBodyBytes) {
        throw new DgError(413, 'PAYLOAD_TOO_LARGE', `Payload Too Large: the request body exceeds the maximum of ${options.maxBodyBytes} bytes.`, 'text');
      }

      // The media: the request body itself, or the JSON `url` fetched by the emulator (§1.1).
      let media: Readable;
      const isJson = /^application\/json\b/i.test(req.headers['content-type'] ?? '');
      rec.body = isJson ? 'url' : 'binary';
      if (isJson) {
        const raw = await readSmall(req, 1024 * 1024);
        uploadDone = true;
        let parsed: unknown;
        try {
          parsed = JSON.parse(raw.toString('utf8'));
        } catch (e) {
          throw new DgError(400, 'INVALID_JSON', 'Invalid JSON submitted.', 'modern', `Json deserialize error: ${(e as Error).message}`);
        }
        const u = (parsed as { url?: unknown } | null)?.url;
        if (typeof u !== 'string' || !/^https?:\/\//i.test(u)) {
          throw new DgError(400, 'INVALID_JSON', 'Invalid JSON submitted.', 'modern', 'Json deserialize error: missing or invalid field `url` (expected an http(s) URI)');
        }
        media = await fetchRemote(u, options, work.signal);
      } else {
        media = req;
      }
      const tap = new BodyTap(options.maxBodyBytes, () => undefined);
      media.on('error', (e) => tap.destroy(e));
      tap.on('end', () => {
        uploadDone = true;
      });
      if (!isJson) req.on('end', () => (uploadDone = true));
      const source = media.pipe(tap);
      const tapFailure = new Promise<never>((_, reject) => {
        tap.on('error', reject);
        work.signal.addEventListener('abort', () => reject(work.signal.reason), { once: true });
      });
      tapFailure.catch(() => undefined);

      // Decode while uploading; the processing cap counts from the end of the upload (§1.5).
      const processing = (async (): Promise<ChannelResult[]> => {
        const enc = q.get('encoding');
        try {
          const serviceMs = typeof options.serviceTimeMs === 'number' ? options.serviceTimeMs : pool ? options.serviceTimeMs?.[pool] : undefined;
          if (serviceMs !== undefined) return [await fixedService(source, serviceMs, work.signal)];
          if (isTrue(q, 'multichannel')) return await recogniseMultichannel(source, work.signal);
          if (enc === 'linear16' || enc === 'mulaw') {
            return [await recognise(convertRaw(source, enc, Number(q.get('sample_rate') ?? 16000)), work.signal)];
          }
          return [await recognise(decodeToPcm(source, { signal: work.signal }), work.signal)];
        } catch (e) {
          if (work.signal.aborted) throw work.signal.reason;
          if (e instanceof DgError) throw e;
          const name = (e as Error)?.name ?? '';
          if (name === 'DecodeError' || name === 'EmptyDecodeError') throw CORRUPT();
          throw e;
        }
      })();
      processing.catch(() => undefined);
      const capMs = pool === 'whisper' ? options.whisperMaxProcessingMs : options.maxProcessingMs;
      const channels = await Promise.race([processing, tapFailure, processingCap(tap, capMs, work.signal)]);
      if (clientGone) throw work.signal.reason;
      // A truncated decode can still "succeed": the tap decides whether the body was whole.
      if (tap.bytes > options.maxBodyBytes) throw new DgError(413, 'PAYLOAD_TOO_LARGE', 'Payload Too Large', 'text');
      rec.bytes = tap.bytes;
      if (channels.every((c) => c.duration === 0)) throw CORRUPT();
      answer(200, JSON.stringify(buildPrerecorded(q, model, requestId, tap.digest, channels)), 'application/json');
    } catch (err) {
      if (err instanceof DgError && err.status === 504) work.abort(err);
      fail(clientGone && work.signal.reason ? work.signal.reason : err);
    } finally {
      if (!work.signal.aborted && rec.status !== undefined) work.abort(new Error('done'));
    }
  };

  // ---- live: GET /v1/listen (upgrade) -----------------------------------------------------------------

  const requestIds = new WeakMap<IncomingMessage, string>();

  const onUpgrade = async (req: IncomingMessage, socket: Duplex, accept: () => Promise<WebSocket>) => {
    const url = new URL(req.url ?? '/', 'http://emulator');
    const q = url.searchParams;
    const requestId = randomUUID();
    const model = q.get('model') ?? 'base';
    const rec: DeepgramLiveRecord = {
      requestId,
      model,
      query: queryRecord(q),
      openedAt: performance.now(),
      audioBytes: 0,
      audioSeconds: 0,
      metadataSent: false,
      ignoredFrames: 0,
      clientBugs: [],
      maxAheadSeconds: 0,
      done: false,
    };
    frames.record({ session: requestId, direction: 'in', kind: 'http', size: 0, type: 'GET /v1/listen (upgrade)' });
    // §2.1: refusals are plain HTTP with dg-request-id and dg-error; the body carries the same text.
    const refuse = (e: DgError) => {
      rec.handshakeStatus = e.status;
      rec.done = true;
      sessions.push(rec);
      const message = e.message.replace(/[\r\n]+/g, ' ');
      frames.record({ session: requestId, direction: 'out', kind: 'http', size: Buffer.byteLength(message), type: String(e.status) });
      refuseUpgrade(socket, e.status, message, { 'dg-request-id': requestId, 'dg-error': message, ...e.headers });
      events.emit('session', rec);
    };
    if (url.pathname !== '/v1/listen') return refuse(new DgError(404, 'NOT_FOUND', 'Not Found'));
    const faults = handle.faults;
    if (faults.neverAnswer) {
      held.add(socket);
      return;
    }
    if (faults.fail5xxTimes && faults.fail5xxTimes > 0) {
      faults.fail5xxTimes -= 1;
      return refuse(unavailable());
    }
    if (faults.slowFirstByteMs && faults.slowFirstByteMs > 0) await sleep(faults.slowFirstByteMs);
    const auth = authenticate(req, options, true);
    if (!auth) return refuse(unauthorized());
    rec.project = auth.project;
    if (options.outOfCredits) return refuse(paymentRequired());
    try {
      validateQuery(q, true, options.strictUtteranceEnd);
    } catch (e) {
      return refuse(e as DgError);
    }
    const hit = faultPlan.take('ws');
    if (hit?.kind === '429-storm') {
      concurrency.noteRefusal(poolKey(auth.project, 'live'));
      return refuse(stormLimited('live streaming'));
    }
    if (hit?.kind === '5xx') return refuse(serverError(hit.status));
    if (!enter(auth.project, 'live')) {
      hit?.refund();
      return refuse(rateLimited('live streaming'));
    }
    requestIds.set(req, requestId);
    sessions.push(rec);
    let ws: WebSocket;
    try {
      ws = await accept();
    } catch {
      leave(auth.project, 'live');
      rec.done = true;
      return;
    }
    rec.openedAt = performance.now();
    if (hit?.kind === 'never-answer') {
      // Accepted, and then silence: audio is taken (and logged), nothing is ever sent back.
      ws.on('error', () => undefined);
      ws.on('message', (data, isBinary) => {
        const buf = toBuffer(data);
        frames.record({ session: requestId, direction: 'in', kind: isBinary ? 'binary' : 'text', size: buf.length });
        if (isBinary) rec.audioBytes += buf.length;
      });
      ws.once('close', (code, reason) => {
        rec.closedBy = 'client';
        rec.closeCode = code;
        rec.closeReason = reason.toString('utf8');
        rec.done = true;
        leave(auth.project, 'live');
        events.emit('session', rec);
      });
      return;
    }
    const session = new LiveSession(ws, rec, q, options, frames, {
      takeFaults: () => {
        const f = { dropAfterAudioMs: faults.dropAfterAudioMs, net0000AfterAudioMs: faults.net0000AfterAudioMs };
        delete faults.dropAfterAudioMs;
        delete faults.net0000AfterAudioMs;
        return f;
      },
      onDone: () => {
        clearTimeout(dropTimer);
        live.delete(session);
        leave(auth.project, 'live');
        events.emit('session', rec);
      },
    });
    live.add(session);
    // `drop-after=S`: the socket is destroyed S s after the handshake (no close frame: 1006).
    const dropTimer = hit?.kind === 'drop-after' ? setTimeout(() => session.drop(), msUntil(rec.openedAt, hit.seconds ?? 0)) : undefined;
  };

  const srv = await startWsServer({ port: opts.port ?? 0, host: opts.host ?? '127.0.0.1', onRequest, onUpgrade });
  // Uploads of up to 2 GB may take long: no server-side request timeout (§1.5 has the processing cap).
  srv.server.requestTimeout = 0;
  // §2.1: the 101 carries dg-request-id.
  srv.wss.on('headers', (headers: string[], req: IncomingMessage) => {
    const id = requestIds.get(req);
    if (id) headers.push(`dg-request-id: ${id}`);
  });

  Object.assign(handle, {
    url: srv.url,
    wsUrl: srv.url.replace(/^http/, 'ws'),
    port: srv.port,
    close: async () => {
      for (const s of live) s.kill();
      for (const h of held) h.destroy();
      await srv.close();
    },
  });
  return handle;
}

async function readSmall(req: IncomingMessage, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > max) throw new DgError(400, 'INVALID_JSON', 'Invalid JSON submitted.', 'modern', 'Json deserialize error: body too large');
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

/** The emulator fetches a `{"url"}` source itself; failures are legacy REMOTE_CONTENT_ERROR (§1.4). */
async function fetchRemote(url: string, options: ResolvedDeepgramOptions, signal: AbortSignal): Promise<Readable> {
  const remoteError = (why: string) => new DgError(400, 'REMOTE_CONTENT_ERROR', `Could not download the media at the provided URL: ${why}`);
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(options.remoteFetchTimeoutMs)]) });
  } catch (e) {
    throw remoteError((e as Error).message);
  }
  if (!res.ok || !res.body) throw remoteError(`remote server answered HTTP ${res.status}`);
  const len = Number(res.headers.get('content-length') ?? NaN);
  if (len > options.maxBodyBytes) {
    await res.body.cancel();
    throw new DgError(413, 'PAYLOAD_TOO_LARGE', `Payload Too Large: the media exceeds the maximum of ${options.maxBodyBytes} bytes.`, 'text');
  }
  const stream = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  // A remote stream that breaks off is a remote-content problem, not corrupt audio.
  const out = new PassThrough();
  stream.on('error', (e) => out.destroy(remoteError(e.message)));
  return stream.pipe(out);
}

/** Rejects with 504 when processing runs `capMs` past the end of the upload. */
function processingCap(tap: Transform, capMs: number, signal: AbortSignal): Promise<never> {
  return new Promise<never>((_, reject) => {
    const arm = () => {
      const timer = setTimeout(
        () => reject(new DgError(504, 'GATEWAY_TIMEOUT', `Gateway Timeout: processing exceeded the maximum processing time of ${Math.round(capMs / 1000)} s; the request was cancelled.`, 'text')),
        capMs,
      );
      signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
    };
    if (tap.readableEnded || tap.writableFinished) arm();
    else tap.once('finish', arm);
  });
}

function waitFor<T>(events: EventEmitter, name: string, list: T[], pred: (x: T) => boolean, timeoutMs: number): Promise<T> {
  const found = list.find(pred);
  if (found) return Promise.resolve(found);
  return new Promise<T>((resolve, reject) => {
    const onEvent = (x: T) => {
      if (!pred(x)) return;
      clearTimeout(timer);
      events.off(name, onEvent);
      resolve(x);
    };
    const timer = setTimeout(() => {
      events.off(name, onEvent);
      reject(new Error(`deepgram emulator: no matching ${name} within ${timeoutMs} ms`));
    }, timeoutMs);
    events.on(name, onEvent);
  });
}

// ---- one live session ------------------------------------------------------------------------------

interface LiveHooks {
  takeFaults(): { dropAfterAudioMs: number | undefined; net0000AfterAudioMs: number | undefined };
  onDone(): void;
}

/**
 * Ingest converts what the client sends into 16 kHz PCM: in-process for raw linear16/mulaw, through
 * ffmpeg for containers and headered encodings; anything else cannot be decoded here.
 */
interface Ingest {
  write(frame: Buffer): void;
  end(): Promise<void>;
  destroy(): void;
  /** Bytes per second of the client's audio when known (raw encodings). */
  byteRate?: number;
}

class LiveSession {
  private readonly requestId: string;
  private readonly model: string;
  private readonly hash = createHash('sha256');
  private readonly rate = new RateMonitor();
  private readonly faults: ReturnType<LiveHooks['takeFaults']>;
  private ingest: Ingest | undefined;
  private recogniser: FlushableRecogniser | undefined;
  private idle: NodeJS.Timeout | undefined;
  private pump: NodeJS.Timeout | undefined;
  private readonly queue: Buffer[] = [];
  private drainWaiters: Array<() => void> = [];
  private decodedBytes = 0;
  private fedBytes = 0;
  private cursor = 0;
  private flushing = false;
  private speechStarted = false;
  private pendingUtteranceEnd: number | undefined;
  private closing = false;
  private ended = false;
  private finished = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly rec: DeepgramLiveRecord,
    private readonly q: URLSearchParams,
    private readonly options: ResolvedDeepgramOptions,
    private readonly frames: FrameLog,
    private readonly hooks: LiveHooks,
  ) {
    this.requestId = rec.requestId;
    this.model = rec.model;
    this.faults = hooks.takeFaults();
    ws.on('message', (data, isBinary) => this.onFrame(toBuffer(data), isBinary));
    ws.on('close', (code, reason) => this.onClosed(code, reason.toString('utf8')));
    ws.on('error', () => undefined);
    this.armIdle();
  }

  kill(): void {
    this.ws.terminate();
    this.cleanup();
  }

  /** Destroy the socket without a close frame (the client sees 1006). */
  drop(): void {
    if (this.ended) return;
    this.rec.closedBy = 'drop';
    this.rec.closeCode = 1006;
    this.ws.terminate();
  }

  // -- frames in

  private onFrame(buf: Buffer, isBinary: boolean): void {
    let type: string | undefined;
    if (!isBinary) {
      try {
        const t = (JSON.parse(buf.toString('utf8')) as { type?: unknown })?.type;
        if (typeof t === 'string') type = t;
      } catch {
        // recorded without a type; handled below
      }
    }
    const r: Parameters<FrameLog['record']>[0] = { session: this.requestId, direction: 'in', kind: isBinary ? 'binary' : 'text', size: buf.length };
    if (type) r.type = type;
    this.frames.record(r);
    if (this.ended) return;
    if (this.closing) {
      // §7.3: frames after CloseStream are ignored.
      this.rec.ignoredFrames += 1;
      return;
    }
    if (isBinary) this.onAudio(buf);
    else this.onText(buf.toString('utf8'));
  }

  private onText(text: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      return this.serverClose(1011, 'Invalid frame sent: text frame is not valid JSON');
    }
    const type = msg && typeof msg === 'object' && !Array.isArray(msg) ? (msg as { type?: unknown }).type : undefined;
    // After the first audio any frame resets the idle timer; before it only audio does (§2.6).
    if (this.rec.firstAudioAt !== undefined) this.armIdle();
    switch (type) {
      case 'KeepAlive':
        return; // no reply (§2.3)
      case 'Finalize':
        void this.finalize();
        return;
      case 'CloseStream':
        void this.closeStream();
        return;
      default:
        return this.serverClose(1011, closeReason(`Invalid frame sent: unknown message type ${JSON.stringify(type ?? null)}`));
    }
  }

  private onAudio(buf: Buffer): void {
    if (buf.length === 0) {
      this.rec.clientBugs.push('empty-binary-frame');
      if (this.options.emptyFrame === 'end-of-stream') {
        void this.closeStream();
        return;
      }
      return this.serverClose(1008, 'DATA-0000: empty binary frame (the legacy end-of-stream signal; send {"type":"CloseStream"})');
    }
    const encoding = this.q.get('encoding');
    if (encoding !== null && !SNIFFED_ENCODINGS.includes(encoding) && looksLikeJson(buf)) {
      this.rec.clientBugs.push('json-in-binary-frame');
      return this.serverClose(1008, 'DATA-0000: could not decode the audio (a JSON message was sent as a binary frame)');
    }
    const first = this.rec.firstAudioAt === undefined;
    if (first) this.rec.firstAudioAt = performance.now();
    this.armIdle();
    this.hash.update(buf);
    this.rec.audioBytes += buf.length;
    if (first) this.ingest = this.openIngest();
    if (!this.ingest) return;
    this.ingest.write(buf);
    if (this.ingest.byteRate) this.onReceivedSeconds(buf.length / this.ingest.byteRate);
  }

  /** Real-time accounting of received audio: strict pacing and the audio-time faults. */
  private onReceivedSeconds(seconds: number): void {
    const { audioSeconds, elapsedSeconds } = this.rate.add(seconds);
    this.rec.audioSeconds = audioSeconds;
    this.rec.maxAheadSeconds = Math.max(this.rec.maxAheadSeconds, audioSeconds - elapsedSeconds);
    const limit = this.options.maxRealtimeFactor * elapsedSeconds + this.options.burstAllowanceMs / 1000;
    if (this.options.strictPacing && audioSeconds > limit) {
      this.rec.clientBugs.push('too-fast');
      return this.serverClose(
        PACING_CLOSE_CODE,
        closeReason(`Audio sent faster than real time: ${audioSeconds.toFixed(1)} s of audio in ${elapsedSeconds.toFixed(1)} s (limit ${this.options.maxRealtimeFactor}x)`),
      );
    }
    const ms = audioSeconds * 1000;
    if (this.faults.dropAfterAudioMs !== undefined && ms >= this.faults.dropAfterAudioMs) {
      this.rec.closedBy = 'drop';
      this.rec.closeCode = 1006;
      this.ws.terminate();
      return;
    }
    if (this.faults.net0000AfterAudioMs !== undefined && ms >= this.faults.net0000AfterAudioMs) {
      return this.serverClose(1011, NET0000_REASON);
    }
  }

  private openIngest(): Ingest | undefined {
    const encoding = this.q.get('encoding');
    const sampleRate = Number(this.q.get('sample_rate') ?? 16000);
    const channels = Number(this.q.get('channels') ?? 1);
    if ((encoding === 'linear16' || encoding === 'mulaw') && channels === 1) {
      const conv = new PcmConverter(sampleRate, encoding === 'mulaw' ? 'pcm_mulaw' : 'pcm_s16le');
      return {
        byteRate: sampleRate * (encoding === 'mulaw' ? 1 : 2),
        write: (frame) => this.onPcm(conv.convert(frame)),
        end: async () => undefined,
        destroy: () => undefined,
      };
    }
    if (encoding === null || SNIFFED_ENCODINGS.includes(encoding)) {
      const input = new PassThrough();
      const abort = new AbortController();
      const done = (async () => {
        for await (const pcm of decodeToPcm(input, { signal: abort.signal })) {
          this.onPcm(pcm);
          // Containers: the rate check runs on decoded audio.
          this.onReceivedSeconds(pcm.length / PCM_BPS);
        }
      })().catch(() => {
        if (!abort.signal.aborted) this.serverClose(1008, 'DATA-0000: could not decode the audio (corrupt or unsupported data)');
      });
      return {
        write: (frame) => input.write(frame),
        end: async () => {
          input.end();
          await done;
        },
        destroy: () => {
          abort.abort();
          input.destroy();
        },
      };
    }
    this.serverClose(1008, closeReason(`DATA-0000: could not decode the audio (the emulator cannot decode encoding=${encoding}${channels > 1 ? ` with ${channels} channels` : ''})`));
    return undefined;
  }

  // -- pacing gate: PCM reaches the recogniser at most maxRealtimeFactor × real time (+ burst)

  private onPcm(pcm: Buffer): void {
    if (!pcm.length || this.ended) return;
    this.decodedBytes += pcm.length;
    this.queue.push(pcm);
    this.pumpQueue();
  }

  private allowedBytes(): number {
    const elapsed = performance.now() - (this.rec.firstAudioAt ?? performance.now());
    return Math.floor(((elapsed * this.options.maxRealtimeFactor + this.options.burstAllowanceMs) * PCM_BPS) / 1000);
  }

  private pumpQueue(): void {
    if (this.ended) return;
    clearTimeout(this.pump);
    let budget = this.allowedBytes() - this.fedBytes;
    while (this.queue.length && budget > 0) {
      const head = this.queue[0]!;
      if (head.length <= budget) {
        this.queue.shift();
        this.feed(head);
        budget -= head.length;
      } else {
        const take = budget - (budget % 2);
        if (take <= 0) break;
        this.queue[0] = head.subarray(take);
        this.feed(head.subarray(0, take));
        budget -= take;
      }
    }
    if (this.queue.length) this.pump = setTimeout(() => this.pumpQueue(), 20);
    else for (const w of this.drainWaiters.splice(0)) w();
  }

  private drained(): Promise<void> {
    if (!this.queue.length) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private feed(pcm: Buffer): void {
    this.fedBytes += pcm.length;
    this.ensureRecogniser().write(pcm);
    const fed = this.fedBytes / PCM_BPS;
    const ue = Number(this.q.get('utterance_end_ms') ?? NaN);
    if (this.pendingUtteranceEnd !== undefined && fed >= this.pendingUtteranceEnd + ue / 1000) {
      this.send({ type: 'UtteranceEnd', channel: [0, 1], last_word_end: this.pendingUtteranceEnd });
      this.pendingUtteranceEnd = undefined;
    }
  }

  private ensureRecogniser(): FlushableRecogniser {
    if (!this.recogniser) {
      const partials = isTrue(this.q, 'interim_results') || isTrue(this.q, 'vad_events');
      this.recogniser = new FlushableRecogniser({
        partialMs: partials ? this.options.interimEveryMs : 0,
        onPartial: (t, audioEnd) => this.onPartial(t, audioEnd),
        onFinal: (u) => this.onFinal(u),
        onError: () => this.serverClose(1011, NET0000_REASON),
      });
    }
    return this.recogniser;
  }

  // -- results out (§2.4, §2.5)

  private onPartial(text: string, audioEnd: number): void {
    const words = text.split(/\s+/).filter(Boolean);
    if (!words.length || this.ended) return;
    if (isTrue(this.q, 'vad_events') && !this.speechStarted) {
      this.speechStarted = true;
      this.send({ type: 'SpeechStarted', channel: [0, 1], timestamp: round(this.cursor) });
    }
    if (!isTrue(this.q, 'interim_results')) return;
    const start = this.cursor;
    const end = Math.max(start, audioEnd);
    const step = (end - start) / words.length;
    const ws = words.map((w, i) => ({ word: w, start: round(start + i * step), end: round(start + (i + 1) * step), confidence: 0.5 }));
    this.sendResults(start, end, ws, { is_final: false, speech_final: false, from_finalize: false });
  }

  private onFinal(u: RecognisedUtterance): void {
    if (this.ended) return;
    if (isTrue(this.q, 'vad_events') && !this.speechStarted && u.words.length) {
      this.send({ type: 'SpeechStarted', channel: [0, 1], timestamp: round(u.words[0]!.start) });
    }
    this.speechStarted = false;
    const start = this.cursor;
    const end = Math.max(start, u.end);
    const words = u.words.map((w) => ({ word: w.word, start: w.start, end: w.end, confidence: w.confidence }));
    // An end-of-speech final is an endpoint; flushed finals (Finalize/CloseStream) are not (§2.5).
    const endpointing = this.q.get('endpointing') !== 'false';
    this.sendResults(start, end, words, { is_final: true, speech_final: !this.flushing && endpointing, from_finalize: this.flushing });
    this.cursor = end;
    if (words.length && this.q.get('utterance_end_ms') !== null) this.pendingUtteranceEnd = round(words[words.length - 1]!.end);
  }

  private sendResults(start: number, end: number, words: Array<{ word: string; start: number; end: number; confidence: number }>, flags: { is_final: boolean; speech_final: boolean; from_finalize: boolean }): void {
    const punct = isTrue(this.q, 'punctuate') || isTrue(this.q, 'smart_format');
    const diarize = isTrue(this.q, 'diarize') || this.q.get('diarize_model') !== null;
    const out = outWords({ start, end, words }, punct, diarize);
    this.send({
      type: 'Results',
      channel_index: [0, 1],
      duration: round(end - start),
      start: round(start),
      ...flags,
      channel: { alternatives: [{ transcript: text(out), confidence: meanConf(out), words: out }] },
      metadata: { request_id: this.requestId, model_uuid: modelUuid(this.model), model_info: modelInfo(this.model) },
    });
  }

  /** Flushed audio that produced no words still closes its range with an empty final (§7.3 Finalize). */
  private sendEmptyFinal(): void {
    const fed = this.fedBytes / PCM_BPS;
    if (fed - this.cursor < 0.001) return;
    this.sendResults(this.cursor, fed, [], { is_final: true, speech_final: false, from_finalize: true });
    this.cursor = fed;
  }

  private async finalize(): Promise<void> {
    await this.drained();
    if (this.ended || this.closing || this.flushing || !this.recogniser) return; // nothing buffered
    this.flushing = true;
    try {
      await this.recogniser.flush();
    } finally {
      this.flushing = false;
    }
    if (!this.ended) this.sendEmptyFinal();
  }

  /** §2.7: remaining finals → exactly one Metadata → close 1000. */
  private async closeStream(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.rec.closeStreamAt = performance.now();
    clearTimeout(this.idle);
    try {
      const serviceMs = typeof this.options.serviceTimeMs === 'number' ? this.options.serviceTimeMs : this.options.serviceTimeMs?.live;
      if (serviceMs) await delay(serviceMs);
      if (this.ended) return;
      await this.ingest?.end();
      await this.drained();
      if (this.ended) return;
      if (this.recogniser) {
        this.flushing = true;
        await this.recogniser.end();
        this.flushing = false;
        if (this.ended) return;
        this.sendEmptyFinal();
      }
      const hasAudio = this.rec.audioBytes > 0;
      const uuid = modelUuid(this.model);
      this.send({
        type: 'Metadata',
        transaction_key: 'deprecated',
        request_id: this.requestId,
        sha256: this.hash.digest('hex'),
        created: new Date().toISOString(),
        duration: hasAudio ? round(this.fedBytes / PCM_BPS, 6) : 0,
        channels: hasAudio ? Number(this.q.get('channels') ?? 1) : 0,
        models: [uuid],
        model_info: { [uuid]: modelInfo(this.model) },
      });
      this.rec.metadataSent = true;
      this.serverClose(1000, '');
    } catch {
      this.serverClose(1011, NET0000_REASON);
    }
  }

  private send(msg: Record<string, unknown>): void {
    if (this.ended || this.ws.readyState !== this.ws.OPEN) return;
    const data = JSON.stringify(msg);
    this.frames.record({ session: this.requestId, direction: 'out', kind: 'text', size: Buffer.byteLength(data), type: String(msg.type) });
    this.ws.send(data);
  }

  // -- timers and closing

  private armIdle(): void {
    clearTimeout(this.idle);
    if (this.closing || this.ended) return;
    this.idle = setTimeout(() => {
      this.rec.clientBugs.push('idle');
      this.serverClose(1011, NET0001_REASON);
    }, this.options.idleTimeoutMs);
  }

  private serverClose(code: number, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.rec.closeCode = code;
    this.rec.closeReason = reason;
    this.rec.closedBy = 'server';
    this.frames.record({ session: this.requestId, direction: 'out', kind: 'text', size: Buffer.byteLength(reason), type: `close ${code}` });
    this.ws.close(code, reason);
    this.cleanup();
    // A peer that never answers the close frame is cut off.
    setTimeout(() => this.ws.terminate(), 5000).unref();
  }

  private onClosed(code: number, reason: string): void {
    if (!this.ended) {
      this.ended = true;
      if (this.rec.closedBy !== 'drop') {
        this.rec.closedBy = 'client';
        this.rec.closeCode = code;
        this.rec.closeReason = reason;
      }
    }
    this.cleanup();
    if (!this.finished) {
      this.finished = true;
      this.rec.done = true;
      this.hooks.onDone();
    }
  }

  private cleanup(): void {
    clearTimeout(this.idle);
    clearTimeout(this.pump);
    this.queue.length = 0;
    for (const w of this.drainWaiters.splice(0)) w();
    this.ingest?.destroy();
    this.recogniser?.kill();
  }
}

function toBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** A binary frame holding a JSON object (e.g. KeepAlive sent as binary) is not audio (§2.3). */
function looksLikeJson(buf: Buffer): boolean {
  if (buf.length > 65_536 || buf.length < 2) return false;
  const s = buf.toString('utf8').trim();
  if (!s.startsWith('{') || !s.endsWith('}')) return false;
  try {
    JSON.parse(s);
    return true;
  } catch {
    return false;
  }
}
