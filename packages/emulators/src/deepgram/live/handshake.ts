/**
 * The live upgrade `GET /v1/listen` (providers.md §2.1, §7.3): refusals are plain HTTP with
 * `dg-request-id` and `dg-error` (the body carries the same text) — 404, 401, 402, 400, 429 over the
 * project's stream cap or when every recogniser of the emulator is busy (the service's answer to
 * over-concurrency; never queued), 5xx faults — and success is 101 with `dg-request-id`.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WebSocket } from 'ws';
import { msUntil, type FaultHit } from '../../kit';
import { refuseUpgrade } from '../../kit';
import { badRequest, DgError, paymentRequired, serverError, unauthorized, unavailable } from '../errors';
import { poolKey, type DeepgramLiveRecord } from '../options';
import { authenticate, queryRecord, validateQuery } from '../query';
import type { DeepgramState } from '../state';
import { liveChannels } from './ingest';
import { LiveSession, toBuffer } from './session';

export async function onLiveUpgrade(st: DeepgramState, req: IncomingMessage, socket: Duplex, accept: () => Promise<WebSocket>): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://emulator');
  const q = url.searchParams;
  const rec = newRecord(q);
  st.frames.record({ session: rec.requestId, direction: 'in', kind: 'http', size: 0, type: 'GET /v1/listen (upgrade)' });
  const refuse = (e: DgError) => refuseHandshake(st, socket, rec, e);
  if (url.pathname !== '/v1/listen') return refuse(new DgError(404, 'NOT_FOUND', 'Not Found'));
  const faults = st.faults();
  if (faults.neverAnswer) {
    st.held.add(socket);
    return;
  }
  if (faults.fail5xxTimes && faults.fail5xxTimes > 0) {
    faults.fail5xxTimes -= 1;
    return refuse(unavailable());
  }
  if (faults.slowFirstByteMs && faults.slowFirstByteMs > 0) await sleep(faults.slowFirstByteMs);
  const auth = authenticate(req, st.options, true);
  if (!auth) return refuse(unauthorized());
  const project = (rec.project = auth.project);
  if (st.options.outOfCredits) return refuse(paymentRequired());
  try {
    validateQuery(q, true, st.options.strictUtteranceEnd);
  } catch (e) {
    return refuse(e as DgError);
  }
  const hit = st.faultPlan.take('ws');
  if (hit?.kind === '429-storm') {
    st.concurrency.noteRefusal(poolKey(project, 'live'));
    return refuse(st.errors.stormLimited('live streaming'));
  }
  if (hit?.kind === '5xx') return refuse(serverError(hit.status));
  // A recogniser per transcribed channel (multichannel); a session that never answers recognises
  // nothing: it takes none. More channels than the emulator has recognisers could never be served:
  // refused as a bad request rather than a 429 the client would retry forever (emulator-specific).
  const { outputs } = liveChannels(q);
  if (outputs > st.recognisers.capacity) {
    hit?.refund();
    return refuse(badRequest(`Bad Request: multichannel with ${outputs} channels needs ${outputs} recognisers; this emulator has ${st.recognisers.capacity} (--recognisers)`, 'INVALID_QUERY_PARAMETER'));
  }
  const release = hit?.kind === 'never-answer' ? () => undefined : st.recognisers.tryAcquire(outputs);
  if (!release) {
    hit?.refund();
    st.concurrency.noteRefusal(poolKey(project, 'live'));
    return refuse(st.errors.rateLimited('live streaming'));
  }
  if (!st.enter(project, 'live')) {
    hit?.refund();
    release();
    return refuse(st.errors.rateLimited('live streaming'));
  }
  st.upgradeIds.set(req, rec.requestId);
  st.sessions.push(rec);
  let ws: WebSocket;
  try {
    ws = await accept();
  } catch {
    release();
    st.leave(project, 'live');
    rec.done = true;
    return;
  }
  rec.openedAt = performance.now();
  if (hit?.kind === 'never-answer') return neverAnswer(st, ws, rec, project);
  startSession(st, ws, rec, q, hit, release);
}

function newRecord(q: URLSearchParams): DeepgramLiveRecord {
  return {
    requestId: randomUUID(),
    model: q.get('model') ?? 'base',
    query: queryRecord(q),
    tags: q.getAll('tag'),
    openedAt: performance.now(),
    audioBytes: 0,
    audioSeconds: 0,
    metadataSent: false,
    ignoredFrames: 0,
    clientBugs: [],
    maxAheadSeconds: 0,
    done: false,
  };
}

/** §2.1: refusals are plain HTTP with dg-request-id and dg-error; the body carries the same text. */
function refuseHandshake(st: DeepgramState, socket: Duplex, rec: DeepgramLiveRecord, e: DgError): void {
  rec.handshakeStatus = e.status;
  rec.done = true;
  st.sessions.push(rec);
  const message = e.headerText;
  st.frames.record({ session: rec.requestId, direction: 'out', kind: 'http', size: Buffer.byteLength(message), type: String(e.status) });
  refuseUpgrade(socket, e.status, message, { 'dg-request-id': rec.requestId, 'dg-error': message, ...e.headers });
  st.events.emit('session', rec);
}

/** `never-answer`: accepted, and then silence — audio is taken (and logged), nothing is ever sent back. */
function neverAnswer(st: DeepgramState, ws: WebSocket, rec: DeepgramLiveRecord, project: string): void {
  ws.on('error', () => undefined);
  ws.on('message', (data, isBinary) => {
    const buf = toBuffer(data);
    st.frames.record({ session: rec.requestId, direction: 'in', kind: isBinary ? 'binary' : 'text', size: buf.length });
    if (isBinary) rec.audioBytes += buf.length;
  });
  ws.once('close', (code, reason) => {
    rec.closedBy = 'client';
    rec.closeCode = code;
    rec.closeReason = reason.toString('utf8');
    rec.done = true;
    st.leave(project, 'live');
    st.events.emit('session', rec);
  });
}

function startSession(st: DeepgramState, ws: WebSocket, rec: DeepgramLiveRecord, q: URLSearchParams, hit: FaultHit | undefined, release: () => void): void {
  const faults = st.faults();
  let dropTimer: NodeJS.Timeout | undefined;
  const session = new LiveSession(ws, rec, q, st.options, st.frames, {
    takeFaults: () => {
      const f = { dropAfterAudioMs: faults.dropAfterAudioMs, net0000AfterAudioMs: faults.net0000AfterAudioMs };
      delete faults.dropAfterAudioMs;
      delete faults.net0000AfterAudioMs;
      return f;
    },
    releaseRecogniser: release,
    onDone: () => {
      clearTimeout(dropTimer);
      st.live.delete(session);
      st.leave(rec.project!, 'live');
      st.events.emit('session', rec);
    },
  });
  st.live.add(session);
  // `drop-after=S`: the socket is destroyed S s after the handshake (no close frame: 1006).
  if (hit?.kind === 'drop-after') dropTimer = setTimeout(() => session.drop(), msUntil(rec.openedAt, hit.seconds ?? 0));
}
