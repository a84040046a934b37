/**
 * What each mode accepts and how it refuses: the resolved configuration, the error answers (OpenAI
 * error object, whisper.cpp `{"error"}`, speaches `{"detail"}`), and the checks of a read form (§5.1,
 * §5.4, §7.6).
 */
import { extname } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { bearerOrToken } from '../kit/auth';
import {
  OPENAI_FILE_EXTENSIONS,
  OPENAI_MAX_UPLOAD_BYTES,
  OPENAI_RESPONSE_FORMATS,
  type ErrorSpec,
  type OpenAIEmulatorMode,
  type OpenAIEmulatorOptions,
  type OpenAIRules,
  type ResponseFormat,
} from './types';

export interface OpenAIConfig {
  mode: OpenAIEmulatorMode;
  keys: Set<string>;
  rules: OpenAIRules;
  /** Upload limit in bytes (Infinity = none). */
  maxUpload: number;
  path: string;
  installed: Set<string>;
  capFor: (key: string) => number;
  retryAfterSeconds: number;
}

export function resolveConfig(opts: OpenAIEmulatorOptions): OpenAIConfig {
  const mode = opts.mode ?? 'openai';
  const defaultCap = opts.defaultCap ?? (mode === 'openai' ? 50 : Number.POSITIVE_INFINITY);
  const caps = opts.caps ?? {};
  return {
    mode,
    keys: new Set(opts.keys ?? ['test-key']),
    rules: {
      requireAuth: mode === 'openai',
      requireModel: mode !== 'whisper.cpp',
      checkExtension: mode === 'openai',
      enforceSizeLimit: true,
      checkModelFormats: mode === 'openai',
      ...opts.rules,
    },
    maxUpload: opts.maxUploadBytes ?? (mode === 'openai' ? OPENAI_MAX_UPLOAD_BYTES : Number.POSITIVE_INFINITY),
    path: opts.path ?? (mode === 'whisper.cpp' ? '/inference' : '/v1/audio/transcriptions'),
    installed: new Set(opts.installedModels ?? ['Systran/faster-whisper-small']),
    capFor: (key) => caps[key] ?? defaultCap,
    retryAfterSeconds: opts.retryAfterSeconds ?? 1,
  };
}

/** The error body in the mode's shape. */
export function errorBody(mode: OpenAIEmulatorMode, e: ErrorSpec): unknown {
  if (mode === 'whisper.cpp') return { error: e.message };
  if (mode === 'speaches') return { detail: e.message };
  return { error: { message: e.message, type: e.type ?? 'invalid_request_error', param: e.param ?? null, code: e.code ?? null } };
}

/** OpenAI masks keys in its 401 message ("sk-ab***wxyz"); never echo a key whole. */
export function maskKey(key: string): string {
  return key.length <= 8 ? '*'.repeat(key.length) : `${key.slice(0, 3)}${'*'.repeat(Math.min(20, key.length - 7))}${key.slice(-4)}`;
}

function wrongKey(key: string): ErrorSpec {
  return { status: 401, message: `Incorrect API key provided: ${maskKey(key)}. You can find your API key at https://platform.openai.com/account/api-keys.`, code: 'invalid_api_key' };
}

/** The key a request is counted under, or the 401 when auth is required and it has none / a wrong one. */
export function authenticate(cfg: OpenAIConfig, req: IncomingMessage): { key: string } | { refusal: ErrorSpec } {
  const auth = bearerOrToken(req.headers.authorization);
  const bearer = auth && auth.scheme.toLowerCase() === 'bearer' ? auth.credential : undefined;
  if (cfg.rules.requireAuth) {
    if (bearer === undefined) {
      return {
        refusal: {
          status: 401,
          message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        },
      };
    }
    if (!cfg.keys.has(bearer)) return { refusal: wrongKey(bearer) };
  }
  return { key: bearer ?? 'anonymous' };
}

export const QUOTA_EXCEEDED: ErrorSpec = {
  status: 429,
  message: 'You exceeded your current quota, please check your plan and billing details.',
  type: 'insufficient_quota',
  code: 'insufficient_quota',
};

export function rateLimited(cfg: OpenAIConfig, key: string): ErrorSpec {
  const cap = cfg.capFor(key);
  const limit = Number.isFinite(cap) ? String(cap) : 'unlimited';
  const retry = cfg.retryAfterSeconds;
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

export function serverError(status = 503): ErrorSpec {
  if (status === 503) return { status, message: 'The server is overloaded or not ready yet.', type: 'server_error' };
  return { status, message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error' };
}

/** `early=STATUS`: the answer for that status, as the service gives it before reading an upload. */
export function earlyError(cfg: OpenAIConfig, status: number, key: string, req: IncomingMessage): ErrorSpec {
  switch (status) {
    case 401:
      return wrongKey(key);
    case 402:
      return { ...QUOTA_EXCEEDED, status };
    case 413: {
      const declared = req.headers['content-length'] ?? 'unknown';
      return { status, message: `Maximum content size limit (${Number.isFinite(cfg.maxUpload) ? cfg.maxUpload : OPENAI_MAX_UPLOAD_BYTES}) exceeded (${declared} bytes declared)`, type: 'server_error' };
    }
    case 429:
      return rateLimited(cfg, key);
    default:
      return serverError(status);
  }
}

/** The 413 after the whole body was counted (§5.3). */
export function tooLarge(cfg: OpenAIConfig, bodyBytes: number): ErrorSpec {
  return { status: 413, message: `Maximum content size limit (${cfg.maxUpload}) exceeded (${bodyBytes} bytes read)`, type: 'server_error' };
}

/** The ffmpeg decode failed: the file is not audio we can read. */
export function undecodable(cfg: OpenAIConfig): ErrorSpec {
  if (cfg.mode === 'whisper.cpp') return { status: 400, message: 'failed to read audio data' };
  return { status: 400, message: 'Audio file might be corrupted or unsupported', param: 'file', code: 'invalid_value' };
}

/** What a valid form asks for. */
export interface TranscriptionParams {
  format: ResponseFormat;
  language: string;
  temperature: number;
  /** `timestamp_granularities[]` includes `word`. */
  words: boolean;
}

/** A refusal of a form: an ErrorSpec, or (speaches) a FastAPI validation body sent as it is. */
export type FormRefusal = { error: ErrorSpec } | { status: number; body: unknown };

const listed = (xs: readonly string[]) => JSON.stringify(xs).replace(/"/g, "'").replace(/,/g, ', ');
const fastApiMissing = (field: string) => ({ status: 422, body: { detail: [{ type: 'missing', loc: ['body', field], msg: 'Field required', input: null }] } });

/** Check a read form (fields, and the file's name if one came) against the mode's rules. */
export function checkForm(cfg: OpenAIConfig, fields: Record<string, string[]>, filename: string | undefined): TranscriptionParams | FormRefusal {
  const { mode, rules } = cfg;
  const field = (name: string) => fields[name]?.[0];
  if (filename === undefined) {
    if (mode === 'speaches') return fastApiMissing('file');
    const message = mode === 'whisper.cpp' ? "no 'file' field in the request" : '1 validation error for Request\nbody -> file\n  field required (type=value_error.missing)';
    return { error: { status: 400, message, param: 'file' } };
  }
  const model = field('model');
  if (rules.requireModel && !model) {
    if (mode === 'speaches') return fastApiMissing('model');
    return { error: { status: 400, message: 'you must provide a model parameter', param: 'model' } };
  }
  if (mode === 'speaches' && model && !cfg.installed.has(model)) {
    return { error: { status: 404, message: `Model '${model}' is not installed locally. You can download the model using \`POST /v1/models\`` } };
  }
  const ext = extname(filename).slice(1).toLowerCase();
  if (rules.checkExtension && !(OPENAI_FILE_EXTENSIONS as readonly string[]).includes(ext)) {
    return { error: { status: 400, message: `Invalid file format. Supported formats: ${listed(OPENAI_FILE_EXTENSIONS)}` } };
  }
  const format = (field('response_format') ?? 'json') as ResponseFormat;
  if (!(OPENAI_RESPONSE_FORMATS as readonly string[]).includes(format)) {
    return { error: { status: 400, message: `'${format}' is not one of ${listed(OPENAI_RESPONSE_FORMATS)} - 'response_format'`, param: 'response_format' } };
  }
  if (rules.checkModelFormats && model && /^gpt-4o(-mini)?-transcribe/.test(model) && format !== 'json' && format !== 'text') {
    return { error: { status: 400, message: `response_format '${format}' is not compatible with model '${model}'. Use 'json' or 'text' instead.`, param: 'response_format', code: 'unsupported_value' } };
  }
  const language = (field('language') ?? 'en').toLowerCase();
  if (mode === 'openai' && field('language') !== undefined && !/^[a-z]{2}$/.test(language)) {
    return { error: { status: 400, message: `Invalid language '${language}'. Language parameter must be specified in ISO-639-1 format.`, param: 'language', code: 'invalid_language_format' } };
  }
  // speaches reads only the bracketed key (§5.1); the others accept both spellings.
  const granularities = [...(fields['timestamp_granularities[]'] ?? []), ...(mode === 'speaches' ? [] : (fields['timestamp_granularities'] ?? []))];
  const temperature = Number(field('temperature') ?? 0) || 0;
  return { format, language, temperature, words: granularities.includes('word') };
}
