/**
 * The AssemblyAI v3 handshake: credentials (§3.1: the raw key in `Authorization`, or a single-use
 * temporary token from `GET /v3/token` in `?token=`) and the query parameters (§3.2).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ASSEMBLYAI_SPEECH_MODELS } from './options';

/** Turn detection defaults of the API reference (streaming-api: 0.4, 400 ms, 1280 ms; providers.md §3.2). */
export const DEFAULT_EOT_THRESHOLD = 0.4;
export const DEFAULT_MIN_TURN_SILENCE_MS = 400;
export const DEFAULT_MAX_TURN_SILENCE_MS = 1280;
/** §3.2: `max_speakers` is 1..10. */
export const MAX_SPEAKERS = 10;

export interface SessionParams {
  sampleRate: number;
  encoding: 'pcm_s16le' | 'pcm_mulaw';
  formatTurns: boolean;
  /** `end_of_turn_confidence_threshold`. */
  threshold: number;
  /** `min_turn_silence` (old name `min_end_of_turn_silence_when_confident`), ms. */
  minSilenceMs: number;
  /** `max_turn_silence`, ms. */
  maxSilenceMs: number;
  inactivitySeconds: number | undefined;
  /** `speaker_labels`: a `speaker_label` on every Turn (speakers.ts). */
  speakerLabels: boolean;
  /** `max_speakers` (1..10, with `speaker_labels` only): at most this many labels. */
  maxSpeakers: number | undefined;
}

interface Token {
  key: string;
  expiresAt: number;
  maxSessionSeconds?: number;
}

/** Temporary tokens: issued by `GET /v3/token`, each good for one session until it expires. */
export class TokenStore {
  private readonly tokens = new Map<string, Token>();

  issue(key: string, expiresInSeconds = 60, maxSessionSeconds?: number): string {
    const token = `tmp_${randomUUID().replace(/-/g, '')}`;
    this.tokens.set(token, { key, expiresAt: Date.now() + expiresInSeconds * 1000, ...(maxSessionSeconds ? { maxSessionSeconds } : {}) });
    return token;
  }

  /** The token's grant, used up; undefined when unknown, used or expired. */
  take(token: string): Token | undefined {
    const t = this.tokens.get(token);
    if (!t || t.expiresAt <= Date.now()) return undefined;
    this.tokens.delete(token);
    return t;
  }

  /** §3.1: `GET /v3/token?expires_in_seconds=1..600[&max_session_duration_seconds=60..10800]`. */
  serve(req: IncomingMessage, res: ServerResponse, keys: ReadonlySet<string>): void {
    req.resume();
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (status: number, body: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (url.pathname !== '/v3/token' || req.method !== 'GET') return json(404, { error: 'Not Found' });
    const key = req.headers.authorization;
    if (!key || !keys.has(key)) return json(401, { error: 'Invalid API key' });
    const expires = Number(url.searchParams.get('expires_in_seconds'));
    if (!Number.isInteger(expires) || expires < 1 || expires > 600) return json(400, { error: 'expires_in_seconds must be an integer between 1 and 600' });
    const maxRaw = url.searchParams.get('max_session_duration_seconds');
    const max = maxRaw === null ? undefined : Number(maxRaw);
    if (max !== undefined && (!Number.isInteger(max) || max < 60 || max > 10800)) {
      return json(400, { error: 'max_session_duration_seconds must be an integer between 60 and 10800' });
    }
    json(200, { token: this.issue(key, expires, max), expires_in_seconds: expires });
  }
}

export type Credentials = { key: string; maxSessionSeconds?: number } | { why: string };

/** §3.1: the raw key in `Authorization`, else a temporary token in `?token=` (used up here). */
export function authenticate(req: IncomingMessage, q: URLSearchParams, keys: ReadonlySet<string>, tokens: TokenStore): Credentials {
  const header = req.headers.authorization;
  if (header && keys.has(header)) return { key: header };
  const token = q.get('token');
  const grant = token ? tokens.take(token) : undefined;
  if (grant) return { key: grant.key, ...(grant.maxSessionSeconds ? { maxSessionSeconds: grant.maxSessionSeconds } : {}) };
  return { why: !header && !token ? 'Missing Authorization header' : 'Invalid API key or token' };
}

/** §3.2 query parameters: the session's settings, or what is wrong with them. */
export function parseParams(q: URLSearchParams, requireSpeechModel: boolean): { params: SessionParams } | { problems: string[] } {
  const problems: string[] = [];
  const model = q.get('speech_model');
  if (model === null) {
    if (requireSpeechModel) problems.push('speech_model is required');
  } else if (!(ASSEMBLYAI_SPEECH_MODELS as readonly string[]).includes(model)) problems.push(`unknown speech_model ${model}`);
  const sampleRate = q.has('sample_rate') ? Number(q.get('sample_rate')) : 16000;
  if (!Number.isInteger(sampleRate) || sampleRate < 8000 || sampleRate > 48000) problems.push(`invalid sample_rate ${q.get('sample_rate')}`);
  const encoding = q.get('encoding') ?? 'pcm_s16le';
  if (encoding !== 'pcm_s16le' && encoding !== 'pcm_mulaw') problems.push(`unsupported encoding ${encoding}`);
  const inactivity = q.has('inactivity_timeout') ? Number(q.get('inactivity_timeout')) : undefined;
  if (inactivity !== undefined && (!Number.isInteger(inactivity) || inactivity < 5 || inactivity > 3600)) {
    problems.push('inactivity_timeout must be an integer between 5 and 3600');
  }
  // §3.2: speaker_labels is a bool; max_speakers 1..10 goes with it. What the service does with
  // max_speakers alone is UNCONFIRMED; refusing it is the strict side (a client that passes here
  // never relies on it being ignored).
  const speakerLabels = q.get('speaker_labels') ?? 'false';
  if (speakerLabels !== 'true' && speakerLabels !== 'false') problems.push('speaker_labels must be true or false');
  const maxSpeakers = q.has('max_speakers') ? Number(q.get('max_speakers')) : undefined;
  if (maxSpeakers !== undefined) {
    if (!Number.isInteger(maxSpeakers) || maxSpeakers < 1 || maxSpeakers > MAX_SPEAKERS) problems.push(`max_speakers must be an integer between 1 and ${MAX_SPEAKERS}`);
    else if (speakerLabels !== 'true') problems.push('max_speakers requires speaker_labels=true');
  }
  if (problems.length) return { problems };
  return {
    params: {
      sampleRate,
      encoding: encoding as SessionParams['encoding'],
      formatTurns: q.get('format_turns') === 'true',
      threshold: numOr(q.get('end_of_turn_confidence_threshold'), DEFAULT_EOT_THRESHOLD),
      minSilenceMs: numOr(q.get('min_turn_silence') ?? q.get('min_end_of_turn_silence_when_confident'), DEFAULT_MIN_TURN_SILENCE_MS),
      maxSilenceMs: numOr(q.get('max_turn_silence'), DEFAULT_MAX_TURN_SILENCE_MS),
      inactivitySeconds: inactivity,
      speakerLabels: speakerLabels === 'true',
      maxSpeakers,
    },
  };
}

function numOr(v: string | null, def: number): number {
  if (v === null) return def;
  const n = Number(v);
  return Number.isFinite(n) ? n : def;
}
