/**
 * Query parameter validation (providers.md §1.2, §2.2) and authentication (§1.1, §2.1), shared by the
 * pre-recorded and the live endpoint.
 */
import type { IncomingMessage } from 'node:http';
import { bearerOrToken } from '../kit';
import { badRequest } from './errors';
import type { ResolvedDeepgramOptions } from './options';

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
export const SNIFFED_ENCODINGS = ['flac', 'amr-nb', 'amr-wb', 'ogg-opus'];
const REST_REDACT = ['pci', 'pii', 'numbers', 'true', 'false'];
const LIVE_REDACT = ['true', 'false', 'pci', 'numbers', 'aggressive_numbers', 'ssn', 'pii'];

export function isTrue(q: URLSearchParams, key: string): boolean {
  return q.get(key) === 'true';
}

export function isWhisper(model: string): boolean {
  return model.startsWith('whisper');
}

/** Punctuated words are asked for (`punctuate` or `smart_format`). */
export function wantsPunctuation(q: URLSearchParams): boolean {
  return isTrue(q, 'punctuate') || isTrue(q, 'smart_format');
}

/** Speaker labels are asked for (`diarize` or a `diarize_model`). */
export function wantsDiarization(q: URLSearchParams): boolean {
  return isTrue(q, 'diarize') || q.get('diarize_model') !== null;
}

export function queryRecord(q: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of q) out[k] = k in out ? `${out[k]},${v}` : v;
  return out;
}

const invalid = (param: string, value: string) =>
  badRequest(`Invalid query parameter \`${param}\`: ${JSON.stringify(value)} is not a valid value.`, 'INVALID_QUERY_PARAMETER');

/** §1.2 / §2.2 validation shared by both endpoints; throws a 400 DgError. */
export function validateQuery(q: URLSearchParams, live: boolean, strictUtteranceEnd: boolean): void {
  for (const key of live ? LIVE_BOOLEANS : REST_BOOLEANS) {
    for (const v of q.getAll(key)) if (v !== 'true' && v !== 'false') throw invalid(key, v);
  }
  const enc = q.get('encoding');
  if (enc !== null && !(live ? LIVE_ENCODINGS : REST_ENCODINGS).includes(enc)) throw invalid('encoding', enc);
  for (const key of ['sample_rate', 'channels']) {
    const v = q.get(key);
    if (v !== null && !/^[1-9]\d*$/.test(v)) throw invalid(key, v);
  }
  for (const v of q.getAll('redact')) for (const part of v.split(',')) if (!(live ? LIVE_REDACT : REST_REDACT).includes(part)) throw invalid('redact', v);
  const dm = q.get('diarize_model');
  if (dm !== null && !(live ? ['latest', 'v1'] : ['latest', 'v1', 'v2']).includes(dm)) throw invalid('diarize_model', dm);
  const model = q.get('model');
  if (model !== null && !/^[A-Za-z0-9][A-Za-z0-9._:-]*$/.test(model)) throw invalid('model', model);
  if (live) validateLive(q, strictUtteranceEnd);
  else {
    const us = q.get('utt_split');
    if (us !== null && !(Number(us) >= 0)) throw invalid('utt_split', us);
  }
}

/** Live-only rules (§2.2, §7.3). */
function validateLive(q: URLSearchParams, strictUtteranceEnd: boolean): void {
  if (q.get('encoding') !== null && q.get('sample_rate') === null) {
    throw badRequest('Bad Request: `sample_rate` is required when `encoding` is specified.', 'INVALID_QUERY_PARAMETER');
  }
  const ep = q.get('endpointing');
  if (ep !== null && ep !== 'false' && ep !== 'true' && !/^\d+$/.test(ep)) throw invalid('endpointing', ep);
  const ue = q.get('utterance_end_ms');
  if (ue !== null) {
    if (!/^\d+$/.test(ue)) throw invalid('utterance_end_ms', ue);
    if (strictUtteranceEnd && Number(ue) < 1000) throw badRequest('Bad Request: `utterance_end_ms` must be at least 1000.', 'INVALID_QUERY_PARAMETER');
    if (strictUtteranceEnd && !isTrue(q, 'interim_results')) {
      throw badRequest('Bad Request: `utterance_end_ms` requires `interim_results=true`.', 'INVALID_QUERY_PARAMETER');
    }
  }
  const model = q.get('model');
  if (model !== null && isWhisper(model)) throw badRequest('Bad Request: Whisper models are not available for streaming.', 'INVALID_QUERY_PARAMETER');
}

/** Deepgram's default `endpointing` (§2.2): 10 ms of silence. */
export const DEFAULT_ENDPOINTING_MS = 10;

/** The pause that ends an utterance, ms, or null for `endpointing=false` (no pause endpoints). */
export function endpointingMs(q: URLSearchParams): number | null {
  const ep = q.get('endpointing');
  if (ep === 'false') return null;
  if (ep === null || ep === 'true') return DEFAULT_ENDPOINTING_MS;
  return Number(ep);
}

/** `utterance_end_ms` when UtteranceEnd messages apply: Deepgram documents them with `interim_results=true` only. */
export function utteranceEndMs(q: URLSearchParams): number | null {
  const ue = q.get('utterance_end_ms');
  if (ue === null || !isTrue(q, 'interim_results')) return null;
  return Number(ue);
}

/**
 * §1.1/§2.1: `Token <key>` or `Bearer <token>` in the Authorization header, or (live) subprotocols
 * `token,<key>` / `bearer,<token>`. A key without a scheme is refused (the iOS issue in §2.1).
 * Returns the project of the credential, or null.
 */
export function authenticate(req: IncomingMessage, opts: ResolvedDeepgramOptions, allowSubprotocol: boolean): { project: string } | null {
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
