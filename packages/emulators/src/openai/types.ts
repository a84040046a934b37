/** The OpenAI-compatible emulator's options, handle and records, and the limits of the service (§5). */
import type { EventEmitter } from 'node:events';
import type { EmulatorHandle } from '../kit/handle';
import type { FaultHooks, FaultSpec } from '../kit/faults';
import type { RecogniserPool } from '../kit/recogniser-pool';
import type { TlsOptions } from '../kit/server';

/** §5.3: OpenAI's upload limit for whisper-1. */
export const OPENAI_MAX_UPLOAD_BYTES = 26_214_400;
/** §5.1: the file extensions OpenAI accepts. */
export const OPENAI_FILE_EXTENSIONS = ['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm'] as const;
export const OPENAI_RESPONSE_FORMATS = ['json', 'text', 'srt', 'verbose_json', 'vtt'] as const;
export type ResponseFormat = (typeof OPENAI_RESPONSE_FORMATS)[number];

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
  /** Serve https with this certificate (the handle's URLs are then https://). */
  tls?: TlsOptions;
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
  /** Scripted faults (`--fault` grammar, kit/faults.ts); switchable at run time via `faultPlan` or `/_emulator/faults`. */
  faultSpecs?: ReadonlyArray<string | FaultSpec>;
  /** Benchmark mode: hold each valid request this many ms and answer an empty transcript (no recognition, no recogniser taken). */
  serviceTimeMs?: number;
  /**
   * The emulator's own recognisers (its hardware, not an account's cap): a count, or a pool shared with
   * other emulators. Default `new RecogniserPool()` (sized from the cores). A valid request whose upload
   * was read waits in FIFO order for one, as a loaded batch service answers later; a client that goes
   * away stops waiting.
   */
  recognisers?: number | RecogniserPool;
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
  /** The recognisers requests take (and queue for); also reported by `GET /_emulator/stats`. */
  readonly recognisers: RecogniserPool;
  readonly requests: OpenAIRequestRecord[];
  /**
   * 'admitted' (OpenAIRequestRecord): a request passed the gateway checks and is in flight (counted);
   * 'queued' (record): its upload was read and it waits for a recogniser (all busy);
   * 'recognising' (record): it has a recogniser; 'recognised' (record): it gave the recogniser back;
   * 'done' (OpenAIRequestRecord): any request finished — answered, refused, or its client went away —
   * once its response is closed (slot released) and its handling is over (`status` final).
   */
  readonly events: EventEmitter;
  quotaExceeded: boolean;
}

/** An error answer, before it is shaped for the mode (OpenAI error object, `{error}` or `{detail}`). */
export interface ErrorSpec {
  status: number;
  message: string;
  type?: string;
  param?: string | null;
  code?: string | null;
  headers?: Record<string, string>;
}

/** Thrown where a request is refused deep in its handling; answered with `spec`. */
export class HttpRefusal extends Error {
  readonly code = 'HTTP_REFUSAL';
  constructor(readonly spec: ErrorSpec) {
    super(spec.message);
  }
}
