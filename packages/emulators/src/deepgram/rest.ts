/**
 * Pre-recorded `POST /v1/listen` (providers.md §1, §7.2): admission (auth, credits, parameters, the
 * scripted faults, the per-project cap), a queue for a free recogniser, the body or the fetched URL
 * decoded while it uploads, and the answer — 200 with the transcript, or the documented error.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { PassThrough, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { answerBeforeBody, handleControlRequest, holdRequest, type FaultHit } from '../kit';
import { asDgError, badRequest, corrupt, DgError, payloadTooLarge, paymentRequired, serverError, unauthorized, unavailable } from './errors';
import { BodyTap, fetchRemote, processingCap, readUrlBody } from './media';
import { poolKey, serviceTimeFor, type DeepgramPool, type DeepgramRestRecord } from './options';
import { authenticate, isWhisper, validateQuery } from './query';
import { recogniseBody } from './recognition';
import { buildPrerecorded, type ChannelResult } from './results';
import type { DeepgramState } from './state';

/** Upload bytes a request may buffer while it waits for a recogniser (then the upload is back-pressured). */
const QUEUED_UPLOAD_BYTES = 8 * 1024 * 1024;

/** The server's handler of plain HTTP requests: control paths, then `/v1/listen`. */
export function onRestRequest(st: DeepgramState, req: IncomingMessage, res: ServerResponse): void {
  if (handleControlRequest(req, res, { provider: 'deepgram', concurrency: st.concurrency, faultPlan: st.faultPlan, recognisers: st.recognisers, records: () => ({ live: st.sessions, rest: st.requests }) })) return;
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
  void new ListenRequest(st, req, res, url.searchParams).run();
}

class ListenRequest {
  private readonly rec: DeepgramRestRecord;
  private readonly requestId = randomUUID();
  private readonly model: string;
  private readonly work = new AbortController();
  private entered: { project: string; pool: DeepgramPool } | undefined;
  private uploadDone = false;
  private clientGone = false;
  private releaseRecogniser: (() => void) | undefined;
  private ended = false;

  constructor(
    private readonly st: DeepgramState,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly q: URLSearchParams,
  ) {
    this.model = q.get('model') ?? 'base';
    this.rec = { requestId: this.requestId, model: this.model, tags: q.getAll('tag'), bytes: 0, startedAt: performance.now() };
    if (req.socket.remoteAddress) this.rec.peer = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    st.requests.push(this.rec);
    st.frames.record({ session: this.requestId, direction: 'in', kind: 'http', size: Number(req.headers['content-length'] ?? 0), type: 'POST /v1/listen' });
    req.on('close', () => {
      if (!req.complete) this.gone();
    });
    res.on('close', () => this.gone());
  }

  async run(): Promise<void> {
    try {
      if (await this.handshakeFaults()) return;
      const admitted = this.admit();
      if (admitted === null) return;
      const { channels, sha256 } = await this.process(admitted);
      this.answer(200, JSON.stringify(buildPrerecorded(this.q, this.model, this.requestId, sha256, channels)), 'application/json');
    } catch (err) {
      if (err instanceof DgError && err.status === 504) this.work.abort(err);
      this.fail(this.clientGone && this.work.signal.reason ? this.work.signal.reason : err);
    } finally {
      this.ended = true;
      this.releaseRecogniser?.();
      this.releaseRecogniser = undefined;
      if (!this.work.signal.aborted && this.rec.status !== undefined) this.work.abort(new Error('done'));
    }
  }

  /** §1.4: a client that leaves before the whole body arrived gets 422 (recorded; it cannot read it). */
  private gone(): void {
    if (this.clientGone || this.res.writableFinished) return;
    this.clientGone = true;
    this.work.abort(
      this.req.complete
        ? new DgError(499, 'CLIENT_CLOSED', 'client closed the connection')
        : new DgError(422, 'ASR_UNPROCESSABLE_ENTITY', 'Unprocessable Entity: the audio upload was incomplete or interrupted.'),
    );
  }

  /** The programmatic fault hooks; true when the request was consumed by one. */
  private async handshakeFaults(): Promise<boolean> {
    const faults = this.st.faults();
    if (faults.neverAnswer) {
      this.st.held.add(this.res.socket ?? this.req.socket);
      this.req.resume();
      return true;
    }
    if (faults.fail5xxTimes && faults.fail5xxTimes > 0) {
      faults.fail5xxTimes -= 1;
      throw unavailable();
    }
    if (faults.slowFirstByteMs && faults.slowFirstByteMs > 0) await sleep(faults.slowFirstByteMs);
    return false;
  }

  /** Auth, credits, parameters, scripted faults and the per-project cap; null when a fault took the request. */
  private admit(): DeepgramPool | null {
    const { st, q } = this;
    const auth = authenticate(this.req, st.options, false);
    if (!auth) throw unauthorized();
    this.rec.project = auth.project;
    if (st.options.outOfCredits) throw paymentRequired();
    if (q.get('callback') !== null) throw badRequest('Bad Request: callback mode is not supported by this emulator.');
    validateQuery(q, false, st.options.strictUtteranceEnd);
    const pool: DeepgramPool = isWhisper(this.model) ? 'whisper' : 'prerecorded';
    this.rec.pool = pool;
    const what = pool === 'whisper' ? 'Whisper' : 'pre-recorded';
    const hit = st.faultPlan.take('rest');
    if (hit?.kind === '429-storm') {
      st.concurrency.noteRefusal(poolKey(auth.project, pool));
      throw st.errors.stormLimited(what);
    }
    if (hit?.kind === '5xx') throw serverError(hit.status);
    if (hit?.kind === 'early') return (this.answerEarly(st.errors.early(hit.status!)), null);
    if (!st.enter(auth.project, pool)) {
      hit?.refund();
      throw st.errors.rateLimited(what);
    }
    this.entered = { project: auth.project, pool };
    st.events.emit('admitted', this.rec);
    if (hit) return (this.holdRequest(hit), null);
    const declared = Number(this.req.headers['content-length'] ?? NaN);
    if (declared > st.options.maxBodyBytes) throw payloadTooLarge(st.options.maxBodyBytes);
    return pool;
  }

  /**
   * Wait for a free recogniser (FIFO); a client that leaves meanwhile aborts the wait. A recogniser
   * granted after the request ended (it lost a race with a failure) goes straight back.
   */
  private takeRecogniser(): Promise<void> {
    const before = performance.now();
    return this.st.recognisers.acquire(this.work.signal).then((release) => {
      if (this.ended) return release();
      this.releaseRecogniser = release;
      this.rec.queuedMs = Math.round(performance.now() - before);
    });
  }

  /** The media: the request body itself, or the JSON `url` fetched by the emulator (§1.1). */
  private async media(): Promise<Readable> {
    const isJson = /^application\/json\b/i.test(this.req.headers['content-type'] ?? '');
    this.rec.body = isJson ? 'url' : 'binary';
    if (!isJson) {
      this.req.on('end', () => (this.uploadDone = true));
      return this.req;
    }
    const url = await readUrlBody(this.req);
    this.uploadDone = true;
    return fetchRemote(url, this.st.options, this.work.signal);
  }

  /**
   * Decode while uploading; the processing cap counts from the end of the upload (§1.5), or from
   * when a recogniser was free if that was later.
   */
  private async process(pool: DeepgramPool): Promise<{ channels: ChannelResult[]; sha256: string }> {
    const { st, work } = this;
    const media = await this.media();
    const tap = new BodyTap(st.options.maxBodyBytes);
    media.on('error', (e) => tap.destroy(e));
    tap.on('end', () => (this.uploadDone = true));
    // While the request waits for a recogniser its upload goes on into this buffer, so the socket is
    // still read and a client that leaves is noticed (a paused socket would not see it go).
    const source = media.pipe(tap).pipe(new PassThrough({ highWaterMark: QUEUED_UPLOAD_BYTES }));
    const tapFailure = new Promise<never>((_, reject) => {
      tap.on('error', reject);
      work.signal.addEventListener('abort', () => reject(work.signal.reason), { once: true });
    });
    tapFailure.catch(() => undefined);
    const serviceMs = serviceTimeFor(st.options, pool);
    // Benchmark mode recognises nothing, so it takes no recogniser.
    if (serviceMs === undefined) {
      const waiting = this.takeRecogniser();
      waiting.catch(() => undefined);
      await Promise.race([waiting, tapFailure]);
    }
    const processing = recogniseBody(source, this.q, serviceMs, work.signal);
    processing.catch(() => undefined);
    const capMs = pool === 'whisper' ? st.options.whisperMaxProcessingMs : st.options.maxProcessingMs;
    const channels = await Promise.race([processing, tapFailure, processingCap(tap, capMs, work.signal)]);
    if (this.clientGone) throw work.signal.reason;
    // A truncated decode can still "succeed": the tap decides whether the body was whole.
    if (tap.bytes > st.options.maxBodyBytes) throw new DgError(413, 'PAYLOAD_TOO_LARGE', 'Payload Too Large', 'text');
    this.rec.bytes = tap.bytes;
    if (channels.every((c) => c.duration === 0)) throw corrupt();
    return { channels, sha256: tap.digest };
  }

  // -- answers

  /** Leave the concurrency slot (once) and record the end. */
  private settle(status: number): void {
    this.rec.status = status;
    this.rec.endedAt = performance.now();
    if (this.entered) this.st.leave(this.entered.project, this.entered.pool);
    this.entered = undefined;
  }

  private answer(status: number, body: string, contentType: string, extra: Record<string, string> = {}): void {
    if (this.rec.status !== undefined) return;
    this.settle(status);
    this.st.frames.record({ session: this.requestId, direction: 'out', kind: 'http', size: Buffer.byteLength(body), type: String(status) });
    if (!this.res.headersSent && !this.res.destroyed) {
      const headers: Record<string, string> = { 'content-type': contentType, 'dg-request-id': this.requestId, ...extra };
      // Refusing before the body was read: close the connection instead of draining a big upload.
      if (!this.uploadDone && status !== 200) headers.connection = 'close';
      this.res.writeHead(status, headers).end(body);
    }
    this.st.events.emit('request', this.rec);
  }

  private fail(err: unknown): void {
    const e = asDgError(err);
    this.rec.errCode = e.errCode;
    if (e.status === 422 || e.status === 499) {
      // The client is gone: nobody reads this answer, but the record shows what the service would say.
      if (this.rec.status === undefined) {
        this.settle(e.status);
        this.st.events.emit('request', this.rec);
      }
      return;
    }
    const { contentType, body } = this.st.errors.payload(e, this.requestId);
    this.answer(e.status, body, contentType, { 'dg-error': e.headerText, ...e.headers });
    // Let a small unread body drain so the client can read the answer; a large one is cut off.
    if (!this.req.complete) {
      this.req.resume();
      const timer = setTimeout(() => this.req.destroy(), 2000);
      this.req.once('end', () => clearTimeout(timer));
    }
  }

  /** `early=STATUS`: the answer goes out before the body is read, then the connection closes. */
  private answerEarly(e: DgError): void {
    const { contentType, body } = this.st.errors.payload(e, this.requestId);
    this.rec.status = e.status;
    this.rec.errCode = e.errCode;
    this.rec.endedAt = performance.now();
    this.st.frames.record({ session: this.requestId, direction: 'out', kind: 'http', size: Buffer.byteLength(body), type: String(e.status) });
    answerBeforeBody(this.req, e.status, body, { 'Content-Type': contentType, 'dg-request-id': this.requestId, 'dg-error': e.headerText, ...e.headers });
    this.st.events.emit('request', this.rec);
  }

  /** `never-answer` / `drop-after`: the request holds its slot, its body is read, nothing is sent. */
  private holdRequest(hit: FaultHit): void {
    const { req, rec } = this;
    const socket = req.socket;
    this.st.held.add(socket);
    void holdRequest(hit, req, this.res, rec.startedAt).then(({ dropped }) => {
      this.st.held.delete(socket);
      if (rec.status !== undefined) return;
      rec.errCode = dropped ? 'FAULT_DROP' : 'CLIENT_CLOSED';
      this.settle(dropped ? -1 : req.complete ? 499 : 422);
      this.st.events.emit('request', rec);
    });
  }
}
