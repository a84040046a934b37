/**
 * The streaming session lifecycle, written once for the clients that stream PCM over one WebSocket
 * and end with a finalize handshake (AssemblyAI v3, Fireworks). A client extends `StreamingProvider`
 * (which checks the common options) and supplies a `StreamProtocol`: the wire facts only (URL,
 * headers, the frame that opens the session if there is one, the finalize request, how frames are read
 * and closes classified). `runStreamSession` does the rest, the same way for every provider
 * (providers.md Appendix A):
 *
 * - the caller's abort and a fatal close both stop the audio pipeline and the pacing loop;
 * - the handshake is bounded and its HTTP refusals are typed (`WsSession.open`); with an opening
 *   frame, audio waits for it (within the connect timeout), else the session is open at the upgrade;
 * - JSON text frames go to the protocol; binary frames and text that is not JSON are ignored;
 * - any close before the finalize answer ends the session: it fails whatever is waiting, with the
 *   protocol's classification of the close;
 * - audio goes out on real-time deadlines in `chunkMs` frames, the tail padded to ≥ 50 ms;
 * - then the finalize request, and its answer awaited while the provider makes progress
 *   (`finalizeWithinProgress`), then close 1000;
 * - a failure right after the server closed reports the close, not the symptom (a failed send); the
 *   socket is closed (or dropped) whatever happened.
 *
 * Deepgram live does not run here: it prefetches audio before connecting, sends KeepAlive, finalizes
 * by the server's close rather than a frame, and checks a checksum; it shares the socket
 * (`WsSession`) and the finalize wait only.
 */
import { randomUUID } from 'node:crypto';
import { ConfigError, ProviderTimeoutError, UnsupportedCombinationError, type ScribeError } from '../../../domain/errors';
import { chunkBytesFor, pacedSend, PCM_BYTES_PER_SECOND, rechunk, type PacingReport } from '../../../domain/pacing';
import type { Segment, Transcript } from '../../../domain/transcript';
import type { Provider, ProviderResult, SessionContext, TranscribeRequest } from '../../../ports/provider';
import { Deferred, within } from './deferred';
import { finalizeWithinProgress, type FinalizeLimits } from './finalize-wait';
import { abortError } from './http-errors';
import { WsSession, type WsCloseInfo } from './ws-socket';

/** Where a session stood when the provider closed it (the close's message says it). */
export type StreamPhase = 'opening' | 'streaming' | 'finalizing';

/** A final result as `session:final` reports it (the worker checkpoints long streams from `segment`). */
export interface StreamFinal {
  start: number;
  end: number;
  segment: Segment;
}

/**
 * What a protocol's frames tell the session. Values are passed as functions where they are only
 * needed when the event is reported (nothing is computed for a session without an event listener).
 */
export interface StreamSink {
  /** The opening frame arrived, naming the session (protocols with `opening` only). */
  opened(requestId: string): void;
  /** The finalize request was answered: every result is in. */
  finalized(): void;
  /** True until the first result was reported. */
  readonly firstResultPending: boolean;
  /** Report the first result (`session:first-result`); later calls do nothing. */
  firstResult(audioSeconds: () => number): void;
  /** Audio up to `seconds` is covered by final results (this narrows the finalize wait's total cap). */
  finalThrough(seconds: number): void;
  /** Report final result `index` (`session:final`) unless it was already; `describe` runs only for a new one. */
  final(index: number, describe: () => StreamFinal): void;
}

/** One session's protocol state: it reads the frames and makes the transcript. */
export interface StreamHandler {
  /** One JSON text frame, parsed but not checked. */
  onMessage(msg: Record<string, unknown>): void;
  /** A close before the finalize answer as a typed error (an error frame before it may say more). */
  closeError(info: WsCloseInfo, phase: StreamPhase): ScribeError;
  /** The transcript, once finalized; `duration` is the audio sent before tail padding. */
  transcript(requestId: string, duration: number): Transcript;
}

export interface StreamFinalize {
  /** The text frame that asks for the remaining results. */
  message: string;
  /** For the timeout message: what is awaited, after which request (e.g. `Termination` after `Terminate`). */
  awaiting: string;
  after: string;
  limits: FinalizeLimits;
  /** Also send `message` when the caller aborts before it went out (so the provider stops counting the session). */
  sendOnAbort?: boolean;
}

/** A streaming provider's wire protocol (see the module comment). */
export interface StreamProtocol {
  /** The socket URL for a job, query included; called once the session starts. */
  url(req: TranscribeRequest): string;
  /** Upgrade headers (the key). */
  headers: Record<string, string>;
  /** The frame that opens the session and names it (e.g. `Begin`); without one, the request id is ours. */
  opening?: string;
  finalize: StreamFinalize;
  /** A session's state, created before the socket opens. */
  start(req: TranscribeRequest, sink: StreamSink): StreamHandler;
}

/** What a session takes from the client's options. */
export interface StreamSettings {
  /** Provider name: in errors, events and the transcript. */
  provider: string;
  /** Never in an error message (the API key). */
  secrets: string[];
  /** Bound on connect + upgrade, and on the opening frame. */
  connectTimeoutMs: number;
  /** Audio per frame (ms). */
  chunkMs: number;
}

/** The options `StreamingProvider` reads (each client documents its own limits and defaults). */
export interface StreamClientOptions {
  apiKey: string;
  chunkMs?: number;
  connectTimeoutMs?: number;
}

/**
 * A streaming provider client: checks the common options (frame length, key) and runs every session
 * of its `protocol()` through `runStreamSession`. A client is this plus its protocol.
 */
export abstract class StreamingProvider<O extends StreamClientOptions> implements Provider {
  readonly name: string;
  protected readonly chunkMs: number;

  /** `maxChunkMs`: the longest frame the provider accepts. */
  constructor(
    name: string,
    protected readonly opts: O,
    maxChunkMs: number,
  ) {
    this.name = name;
    this.chunkMs = streamChunkMs(name, opts.chunkMs, maxChunkMs);
    if (!opts.apiKey) throw new ConfigError(`${name}: an API key is required`);
  }

  transcribe(req: TranscribeRequest, ctx: SessionContext): Promise<ProviderResult> {
    const settings: StreamSettings = { provider: this.name, secrets: [this.opts.apiKey], connectTimeoutMs: this.opts.connectTimeoutMs ?? 10_000, chunkMs: this.chunkMs };
    return runStreamSession(settings, this.protocol(), req, ctx);
  }

  /** The wire protocol, read from the options as a session starts. */
  protected abstract protocol(): StreamProtocol;
}

/** A client's frame length: `chunkMs` (default 100) within 50 ms and the provider's maximum. */
function streamChunkMs(provider: string, chunkMs: number | undefined, maxMs: number): number {
  const ms = chunkMs ?? 100;
  if (!(ms >= 50 && ms <= maxMs)) throw new ConfigError(`${provider}: chunkMs must be 50–${maxMs} ms (got ${ms})`);
  return ms;
}

/** The streaming endpoint: `baseUrl` without trailing slashes, `path` appended unless it ends with it. */
export function streamUrl(baseUrl: string, path: string): URL {
  const base = baseUrl.replace(/\/+$/, '');
  return new URL(base.endsWith(path) ? base : `${base}${path}`);
}

/**
 * Pad the final chunk of a stream with silence (zero samples) to at least `minBytes`: streaming
 * providers reject frames shorter than 50 ms (AssemblyAI 3007; Fireworks 50–400 ms), and a file's tail
 * is rarely a whole chunk (Appendix A).
 */
export async function* padLastChunk(chunks: AsyncIterable<Buffer>, minBytes: number): AsyncGenerator<Buffer> {
  for await (const chunk of chunks) {
    yield chunk.length >= minBytes ? chunk : Buffer.concat([chunk, Buffer.alloc(minBytes - chunk.length)]);
  }
}

/** Pass chunks through, reporting each one's size (to know the audio length before padding). */
export async function* countBytes(source: AsyncIterable<Buffer>, add: (n: number) => void): AsyncGenerator<Buffer> {
  for await (const b of source) {
    add(b.length);
    yield b;
  }
}

/** The session side of `StreamSink`: the events reported once, and the two answers awaited. */
class SessionProgress implements StreamSink {
  readonly opening = new Deferred<string>();
  readonly answer = new Deferred<void>();
  finalThroughSeconds = 0;
  private firstReported = false;
  private readonly finalsReported = new Set<number>();

  constructor(private readonly ctx: SessionContext) {}

  opened(requestId: string): void {
    this.opening.resolve(requestId);
  }

  finalized(): void {
    this.answer.resolve();
  }

  get firstResultPending(): boolean {
    return !this.firstReported;
  }

  firstResult(audioSeconds: () => number): void {
    if (this.firstReported) return;
    this.firstReported = true;
    this.ctx.onEvent?.({ type: 'session:first-result', audioSeconds: audioSeconds() });
  }

  finalThrough(seconds: number): void {
    this.finalThroughSeconds = Math.max(this.finalThroughSeconds, seconds);
  }

  final(index: number, describe: () => StreamFinal): void {
    if (this.finalsReported.has(index)) return;
    this.finalsReported.add(index);
    this.ctx.onEvent?.({ type: 'session:final', index, ...describe() });
  }

  /** Fail whatever is waiting for an answer. */
  fail(err: ScribeError): void {
    this.opening.reject(err);
    this.answer.reject(err);
  }
}

/** One streaming session of `protocol` (see the module comment). */
export async function runStreamSession(settings: StreamSettings, protocol: StreamProtocol, req: TranscribeRequest, ctx: SessionContext): Promise<ProviderResult> {
  const { provider } = settings;
  const { finalize } = protocol;
  if (req.mode !== 'stream') throw new UnsupportedCombinationError(`${provider} supports stream mode only (got ${req.mode})`);
  // Stops the audio pipeline and the pacing loop when the caller aborts or the session fails.
  const stop = new AbortController();
  const onCallerAbort = () => stop.abort(abortError(provider, ctx.signal));
  ctx.signal.addEventListener('abort', onCallerAbort, { once: true });

  const progress = new SessionProgress(ctx);
  const handler = protocol.start(req, progress);
  let session: WsSession | undefined;
  let finalizeSent = false;
  let fatal: ScribeError | undefined;
  let bytes = 0;
  let chunks = 0;
  let audioBytes = 0; // before tail padding

  try {
    session = await WsSession.open({
      provider,
      url: protocol.url(req),
      headers: protocol.headers,
      signal: ctx.signal,
      connectTimeoutMs: settings.connectTimeoutMs,
      secrets: settings.secrets,
    });
    const ws = session;
    // No opening frame: the session is open now (before any frame is read), under an id of ours.
    const ownId = protocol.opening ? undefined : randomUUID();
    if (ownId !== undefined) {
      progress.opened(ownId);
      ctx.onEvent?.({ type: 'session:open', requestId: ownId });
    }

    ws.onMessage((data, isBinary) => {
      if (isBinary) return;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
      } catch {
        return;
      }
      handler.onMessage(msg);
    });

    // Any close before the finalize answer ends the session: fail whatever is waiting.
    void ws.closed.then((info) => {
      ctx.onEvent?.({ type: 'session:closed', code: info.code, reason: info.reason });
      if (progress.answer.settled) return;
      fatal = handler.closeError(info, progress.opening.settled ? (finalizeSent ? 'finalizing' : 'streaming') : 'opening');
      progress.fail(fatal);
      stop.abort(fatal);
    });

    // The opening frame comes first; a close before it fails the connect.
    const requestId = ownId ?? (await awaitOpening(settings, protocol, progress, stop.signal));
    if (ownId === undefined) ctx.onEvent?.({ type: 'session:open', requestId });

    // Real-time pacing on absolute deadlines; every frame `chunkMs`, the tail padded to 50 ms.
    const pacing: PacingReport = await pacedSend({
      chunks: padLastChunk(rechunk(countBytes(req.audio.pcm(stop.signal), (n) => (audioBytes += n)), chunkBytesFor(settings.chunkMs)), chunkBytesFor(50)),
      clock: ctx.clock,
      signal: stop.signal,
      onLateness: (ms) => ctx.onEvent?.({ type: 'session:chunk-lateness', ms }),
      send: async (chunk) => {
        await ws.send(chunk);
        bytes += chunk.length;
        chunks += 1;
      },
    });

    finalizeSent = true;
    await ws.send(finalize.message);
    await finalizeWithinProgress(progress.answer.promise, {
      provider,
      awaiting: finalize.awaiting,
      after: finalize.after,
      clock: ctx.clock,
      limits: finalize.limits,
      pendingAudioSeconds: () => bytes / PCM_BYTES_PER_SECOND - progress.finalThroughSeconds,
      activity: (onFrame) => ws.onActivity(onFrame),
      signal: stop.signal,
    });
    await ws.close(1000, '', 1000);

    const transcript = handler.transcript(requestId, audioBytes / PCM_BYTES_PER_SECOND);
    return {
      transcript,
      stats: { requestId, bytesSent: bytes, chunksSent: chunks, finalResults: transcript.segments.length, reconnects: 0, pacing },
    };
  } catch (err) {
    if (ctx.signal.aborted) {
      if (finalize.sendOnAbort && session?.isOpen && !finalizeSent) await session.send(finalize.message).catch(() => undefined);
      throw abortError(provider, ctx.signal);
    }
    // A failed send usually means the server just closed: report the close, not the symptom.
    if (!fatal && session && !session.isOpen) await within(session.closed, 1000, () => new Error('close wait')).catch(() => undefined);
    if (fatal) throw fatal;
    throw err;
  } finally {
    ctx.signal.removeEventListener('abort', onCallerAbort);
    if (!stop.signal.aborted) stop.abort();
    if (session?.isOpen) await session.close(1000, '', 500);
    else session?.terminate();
  }
}

/** The opening frame's request id, within the connect timeout. */
function awaitOpening(settings: StreamSettings, protocol: StreamProtocol, progress: SessionProgress, signal: AbortSignal): Promise<string> {
  const ms = settings.connectTimeoutMs;
  return within(progress.opening.promise, ms, () => new ProviderTimeoutError(`${settings.provider}: no ${protocol.opening} within ${ms} ms`), signal);
}
