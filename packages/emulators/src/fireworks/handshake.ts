/**
 * The Fireworks streaming handshake (providers.md §4.1–4.2, §4.6): the raw key in the `Authorization`
 * header or query parameter, the query parameters the emulator honours, and its refusals at the upgrade —
 * plain HTTP answers with `{"error":{"message","code"}}` (401 bad key; 429 with Retry-After over the
 * per-key cap, at recogniser capacity or in a `429-storm`; 5xx for a `5xx[=S]` fault). Fireworks documents
 * no error answers (UNCONFIRMED); these are the emulator's.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FrameLog } from '../kit';
import { queryList, refuseUpgrade } from '../kit';
import type { SegmentStyle } from './segments';

export const TOO_MANY_MESSAGE = 'Too many concurrent streaming sessions';

/** §4.1: the raw key in the Authorization header, or as the `Authorization` query parameter. */
export function requestKey(req: IncomingMessage, q: URLSearchParams): string {
  return req.headers.authorization ?? q.get('Authorization') ?? '';
}

/** §4.2: what shapes the transcription messages (`language`, `timestamp_granularities`, repeated or comma list). */
export function segmentStyle(q: URLSearchParams, reviseEarlier: boolean): SegmentStyle {
  const granularities = new Set(queryList(q, 'timestamp_granularities').concat(queryList(q, 'timestamp_granularities[]')));
  return { language: q.get('language') ?? 'en', wordTimes: granularities.has('word'), segmentTimes: granularities.has('segment'), reviseEarlier };
}

/** Refuse the upgrade with an HTTP answer (logged as an `http` frame of the session). */
export function refuse(frames: FrameLog, session: string, socket: Duplex, status: number, message: string, headers: Record<string, string> = {}): void {
  frames.record({ session, direction: 'out', kind: 'http', size: 0, type: String(status) });
  refuseUpgrade(socket, status, { error: { message, code: status } }, headers);
}

export function serverErrorMessage(status: number): string {
  return status === 503 ? 'Service Unavailable' : 'Internal Server Error';
}
