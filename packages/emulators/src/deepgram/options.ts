/**
 * The Deepgram emulator's options, the records it keeps of each request and session, its handle, and
 * the constants tests match on.
 */
import type { EventEmitter } from 'node:events';
import type { EmulatorHandle, FaultHooks, FaultSpec } from '../kit';
import { RecogniserPool } from '../kit';
import type { TlsOptions } from '../kit';

export type DeepgramPool = 'prerecorded' | 'whisper' | 'live';
export type ErrorShape = 'legacy' | 'modern' | 'text';

export interface DeepgramFaults extends FaultHooks {
  /** Close the next live session with 1011 NET-0000 after this many ms of received audio. */
  net0000AfterAudioMs?: number;
}

export interface DeepgramEmulatorOptions {
  port?: number;
  host?: string;
  /** Serve REST and WebSocket over TLS on the one port (`url` https://…, `wsUrl` wss://…). */
  tls?: TlsOptions;
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
  /** Live: continuous speech finalised (`is_final` without `speech_final`) about this often, ms (default 4000). */
  maxSegmentMs?: number;
  /**
   * Recognisers this emulator runs at once (its own hardware, not a project cap): a number or a pool
   * shared with other emulators. Default `new RecogniserPool()` (cores × 3). A live session holds one
   * from its handshake to its end; at capacity the handshake is refused with HTTP 429 like the
   * per-project cap. Pre-recorded requests wait for one (a slower answer, as a loaded service gives).
   */
  recognisers?: number | RecogniserPool;
  faults?: DeepgramFaults;
  /** Scripted faults (`--fault` grammar, common.ts); switchable at run time via `faultPlan` or `/_emulator/faults`. */
  faultSpecs?: ReadonlyArray<string | FaultSpec>;
  /**
   * Benchmark mode for pre-recorded requests: skip recognition, read the whole body, hold the request
   * for this fixed service time and answer an empty transcript (duration estimated as 16 kHz s16le).
   * Caps, auth and the concurrency tracker behave exactly as in normal mode; no recogniser is taken.
   * For live sessions (a number, or the `live` entry) it is the delay between CloseStream and the
   * final Results/Metadata.
   */
  serviceTimeMs?: number | Partial<Record<DeepgramPool, number>>;
}

type Unresolved = 'port' | 'host' | 'tls' | 'faults' | 'faultSpecs' | 'errorShape' | 'retryAfterSeconds' | 'serviceTimeMs' | 'recognisers';

export type ResolvedDeepgramOptions = Required<Omit<DeepgramEmulatorOptions, Unresolved>> &
  Pick<DeepgramEmulatorOptions, 'errorShape' | 'retryAfterSeconds' | 'serviceTimeMs'>;

/** One pre-recorded request as the emulator saw it. */
export interface DeepgramRestRecord {
  requestId: string;
  /** The client's address and port (`10.0.0.2:41234`): which host of a fleet sent it. */
  peer?: string;
  project?: string;
  model: string;
  /** The request's `tag` values (Deepgram labels usage records with them; the fleet sends its batch id). */
  tags: string[];
  pool?: DeepgramPool;
  body?: 'binary' | 'url';
  /** Body bytes received (binary) or fetched (url). */
  bytes: number;
  /** HTTP status answered; 422 = client left mid-upload; 499 = client left after the upload. */
  status?: number;
  errCode?: string;
  startedAt: number;
  /** Milliseconds the request waited for a free recogniser (absent when it needed none). */
  queuedMs?: number;
  endedAt?: number;
}

/** One live session (or refused handshake) as the emulator saw it. */
export interface DeepgramLiveRecord {
  requestId: string;
  project?: string;
  model: string;
  query: Record<string, string>;
  /** The handshake's `tag` values (as `query.tag`, but each apart). */
  tags: string[];
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
  /** ws://127.0.0.1:port (wss:// with `tls`) */
  readonly wsUrl: string;
  /** The resolved options; mutable at run time (e.g. flip `outOfCredits`, `strictPacing`, caps). */
  readonly options: ResolvedDeepgramOptions;
  /** The recognisers this emulator draws on (in use, high-water mark, refusals). */
  readonly recognisers: RecogniserPool;
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

/** 16 kHz mono s16le, the recogniser's input. */
export const PCM_BPS = 32_000;

export function resolveOptions(opts: DeepgramEmulatorOptions): ResolvedDeepgramOptions {
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
    maxSegmentMs: opts.maxSegmentMs ?? 4000,
  };
  if (opts.errorShape !== undefined) options.errorShape = opts.errorShape;
  if (opts.retryAfterSeconds !== undefined) options.retryAfterSeconds = opts.retryAfterSeconds;
  if (opts.serviceTimeMs !== undefined) options.serviceTimeMs = opts.serviceTimeMs;
  return options;
}

export function recogniserPool(r: DeepgramEmulatorOptions['recognisers']): RecogniserPool {
  if (r instanceof RecogniserPool) return r;
  return r === undefined ? new RecogniserPool() : new RecogniserPool(r);
}

/** The fixed service time of a pool, when set (benchmark mode). */
export function serviceTimeFor(options: ResolvedDeepgramOptions, pool: DeepgramPool): number | undefined {
  const s = options.serviceTimeMs;
  return typeof s === 'number' ? s : s?.[pool];
}
