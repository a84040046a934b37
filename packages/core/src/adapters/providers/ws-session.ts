/**
 * WebSocket plumbing shared by the streaming provider clients (AssemblyAI v3, Fireworks): opening a
 * session with a bounded handshake whose HTTP refusals become typed errors, awaiting sends, the close
 * code as a promise, and the small helpers every streaming client needs (deadline races, HTTP status
 * classification, Retry-After, key redaction, the last-chunk padding rule). The finalize wait of all
 * three streaming clients (Deepgram live too) is `withinProgress`: bounded by progress, not by a
 * fixed time.
 */
import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import type { Clock } from '../../domain/clock';
import {
  InputTooLargeError,
  JobCancelledError,
  ProviderAuthError,
  ProviderPaymentError,
  ProviderRateLimitedError,
  ProviderRejectedError,
  ProviderTimeoutError,
  ProviderUnavailableError,
  ScribeError,
} from '../../domain/errors';
import type { Word } from '../../domain/transcript';

export interface WsCloseInfo {
  code: number;
  reason: string;
}

export interface OpenWsOptions {
  /** Provider name, for error messages. */
  provider: string;
  url: string;
  headers?: Record<string, string>;
  signal: AbortSignal;
  /** Bound on TCP connect + TLS + HTTP upgrade. */
  connectTimeoutMs: number;
  /** Secrets that must never appear in an error message (e.g. the API key). */
  secrets?: string[];
}

/** Replace every occurrence of a secret with `***`. */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('***');
  return out;
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | string[] | null | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/**
 * An HTTP status from a provider as a typed error (Appendix A): 401 auth, 402 payment, 413 too large,
 * 429 rate limit (Retry-After honoured), 408 / 5xx retryable, other 4xx rejected.
 */
export function httpStatusError(provider: string, status: number, detail: string, retryAfter?: string | string[] | null): ScribeError {
  const msg = `${provider}: HTTP ${status}${detail ? ` ${detail}` : ''}`;
  const opts = { status };
  if (status === 401) return new ProviderAuthError(msg, opts);
  if (status === 402) return new ProviderPaymentError(msg, opts);
  if (status === 413) return new InputTooLargeError(msg, opts);
  if (status === 429) {
    const ms = parseRetryAfter(retryAfter);
    return new ProviderRateLimitedError(msg, ms === undefined ? opts : { ...opts, retryAfterMs: ms });
  }
  if (status === 408) return new ProviderTimeoutError(msg, opts);
  if (status >= 500) return new ProviderUnavailableError(msg, opts);
  return new ProviderRejectedError(msg, opts);
}

/** The error a cancelled session throws: the signal's reason when it is one of ours. */
export function abortError(provider: string, signal: AbortSignal): ScribeError {
  const reason: unknown = signal.reason;
  if (reason instanceof ScribeError) return reason;
  return new JobCancelledError(`${provider}: session aborted`, { cause: reason });
}

export class Deferred<T> {
  readonly promise: Promise<T>;
  resolve!: (v: T) => void;
  reject!: (e: unknown) => void;
  settled = false;
  constructor() {
    this.promise = new Promise<T>((res, rej) => {
      this.resolve = (v) => {
        this.settled = true;
        res(v);
      };
      this.reject = (e) => {
        this.settled = true;
        rej(e);
      };
    });
    this.promise.catch(() => {});
  }
}

/**
 * Await `p`, but give up after `timeoutMs` (throwing `onTimeout()`) or when `signal` aborts (throwing
 * its reason). Timers use the event loop's real time: these are network bounds, not pacing.
 */
export async function within<T>(p: Promise<T>, timeoutMs: number, onTimeout: () => Error, signal?: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), timeoutMs);
        if (signal) {
          onAbort = () => reject(signal.reason);
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
        }
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
    if (signal && onAbort) signal.removeEventListener('abort', onAbort);
  }
}

// ---- finalize waits bounded by progress --------------------------------------------------------

/**
 * How long a stream's finalize handshake (AssemblyAI Terminate → Termination, Fireworks final
 * checkpoint → echo, Deepgram CloseStream → Metadata → close) may take. A provider that is still
 * sending results is slow, not stuck: the session is stuck only after `idleMs` without any message
 * from the provider. The whole wait is also capped at `idleMs + msPerAudioSecond × the audio seconds
 * sent that no final result covered yet` (`finalizeTotalMs`), so a provider that keeps talking without
 * ever finishing cannot hold the session forever.
 */
export interface FinalizeLimits {
  /** FINALIZE_IDLE_MS: longest silence from the provider (default 20 000). */
  idleMs: number;
  /** FINALIZE_MS_PER_AUDIO_SECOND: extra total wait per second of audio not yet final (default 1 000). */
  msPerAudioSecond: number;
}

export const DEFAULT_FINALIZE_LIMITS: FinalizeLimits = { idleMs: 20_000, msPerAudioSecond: 1_000 };

/** The finalize limits of a client: its explicit per-client idle override wins over the fleet setting. */
export function finalizeLimits(opts: { finalizeIdleMs?: number; finalizeMsPerAudioSecond?: number }, idleOverride?: number): FinalizeLimits {
  return {
    idleMs: idleOverride ?? opts.finalizeIdleMs ?? DEFAULT_FINALIZE_LIMITS.idleMs,
    msPerAudioSecond: opts.finalizeMsPerAudioSecond ?? DEFAULT_FINALIZE_LIMITS.msPerAudioSecond,
  };
}

/** The cap on a whole finalize wait, given the audio seconds sent but not yet covered by a final result. */
export function finalizeTotalMs(limits: FinalizeLimits, pendingAudioSeconds: number): number {
  return Math.round(limits.idleMs + limits.msPerAudioSecond * Math.max(0, pendingAudioSeconds));
}

export type ProgressExpiry = 'idle' | 'total';

/**
 * The deadline arithmetic on a Clock (pure, so a VirtualClock can drive it): started at construction,
 * `touch()` on every frame from the provider; expired when `idleMs` passed since the later of the
 * start and the last touch, or `totalMs` since the start.
 */
export class ProgressDeadline {
  readonly startedAt: number;
  private lastActivity: number;

  constructor(
    private readonly clock: Clock,
    readonly idleMs: number,
    readonly totalMs: number,
  ) {
    this.startedAt = clock.now();
    this.lastActivity = this.startedAt;
  }

  touch(): void {
    this.lastActivity = Math.max(this.lastActivity, this.clock.now());
  }

  /** The next moment the deadline can expire (a touch only moves it later). */
  get deadline(): number {
    return Math.min(this.lastActivity + this.idleMs, this.startedAt + this.totalMs);
  }

  get elapsedMs(): number {
    return this.clock.now() - this.startedAt;
  }

  expired(): ProgressExpiry | undefined {
    const now = this.clock.now();
    if (now >= this.startedAt + this.totalMs) return 'total';
    if (now >= this.lastActivity + this.idleMs) return 'idle';
    return undefined;
  }
}

export interface ProgressTimeout {
  reason: ProgressExpiry;
  idleMs: number;
  totalMs: number;
  elapsedMs: number;
}

export interface WithinProgressOptions {
  clock: Clock;
  idleMs: number;
  totalMs: number;
  /** Register `onFrame` to be called on every frame from the provider; returns the unsubscribe. */
  activity: (onFrame: () => void) => () => void;
  onTimeout: (t: ProgressTimeout) => Error;
  /** Aborting rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Await `p` while the provider makes progress: reject with `onTimeout(…)` once no frame has arrived
 * for `idleMs`, or `totalMs` have passed in all (see ProgressDeadline), or with the signal's reason.
 * Sleeps on `clock`, waking at the current deadline and re-checking, since a frame only moves the
 * deadline later.
 */
export async function withinProgress<T>(p: Promise<T>, o: WithinProgressOptions): Promise<T> {
  const deadline = new ProgressDeadline(o.clock, o.idleMs, o.totalMs);
  const unsubscribe = o.activity(() => deadline.touch());
  const done = new AbortController();
  const sleepSignal = o.signal ? AbortSignal.any([done.signal, o.signal]) : done.signal;
  const watchdog = (async (): Promise<never> => {
    while (!done.signal.aborted) {
      if (o.signal?.aborted) throw o.signal.reason;
      const why = deadline.expired();
      if (why) throw o.onTimeout({ reason: why, idleMs: o.idleMs, totalMs: o.totalMs, elapsedMs: Math.round(deadline.elapsedMs) });
      try {
        await o.clock.sleepUntil(deadline.deadline, sleepSignal);
      } catch (e) {
        if (o.signal?.aborted) throw o.signal.reason;
        if (!done.signal.aborted) throw e;
      }
    }
    throw new Error('withinProgress: over'); // the race is decided; nobody reads this
  })();
  watchdog.catch(() => {});
  try {
    return await Promise.race([p, watchdog]);
  } finally {
    done.abort();
    unsubscribe();
  }
}

export interface FinalizeWaitOptions {
  provider: string;
  /** For messages: what is awaited, after which request (e.g. `Termination` after `Terminate`). */
  awaiting: string;
  after: string;
  clock: Clock;
  limits: FinalizeLimits;
  /** Audio seconds sent that no final result covers yet (sets the total cap). */
  pendingAudioSeconds: number;
  activity: (onFrame: () => void) => () => void;
  signal?: AbortSignal;
}

/** A finalize handshake's wait (see FinalizeLimits): `withinProgress`, timing out with PROVIDER_TIMEOUT. */
export function finalizeWithinProgress<T>(p: Promise<T>, o: FinalizeWaitOptions): Promise<T> {
  const pending = Math.max(0, o.pendingAudioSeconds);
  const wait: WithinProgressOptions = {
    clock: o.clock,
    idleMs: o.limits.idleMs,
    totalMs: finalizeTotalMs(o.limits, pending),
    activity: o.activity,
    onTimeout: (t) =>
      new ProviderTimeoutError(
        t.reason === 'idle'
          ? `${o.provider}: no ${o.awaiting} within ${t.idleMs} ms of the server's last message (${t.elapsedMs} ms after ${o.after})`
          : `${o.provider}: no ${o.awaiting} within ${t.totalMs} ms after ${o.after} (the bound for ${pending.toFixed(1)} s of audio not yet final), although the server kept sending`,
        { details: { reason: t.reason, idleMs: t.idleMs, totalMs: t.totalMs, elapsedMs: t.elapsedMs, pendingAudioSeconds: pending } },
      ),
  };
  if (o.signal) wait.signal = o.signal;
  return withinProgress(p, wait);
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

/**
 * A provider's word as a transcript word: `word` is the bare lower-case token; text that carries
 * punctuation or casing (formatted output) is kept as `punctuated_word`.
 */
export function transcriptWord(text: string, start: number, end: number, confidence: number): Word {
  const plain = text.toLowerCase().replace(/[^\p{L}\p{N}']+/gu, '');
  const w: Word = { word: plain || text, start, end, confidence };
  if (plain !== text) w.punctuated_word = text;
  return w;
}

/** One open WebSocket session. */
export class WsSession {
  /** Resolves once when the socket closes (1006 when it dropped without a close frame). */
  readonly closed: Promise<WsCloseInfo>;
  private closeInfo: WsCloseInfo | undefined;
  /** Messages that arrive before a handler is attached (the first may share the 101's TCP segment). */
  private early: Array<[Buffer, boolean]> | null = [];
  private handler: ((data: Buffer, isBinary: boolean) => void) | undefined;
  private readonly activity = new Set<() => void>();

  private constructor(
    private readonly ws: WebSocket,
    private readonly provider: string,
  ) {
    this.closed = new Promise<WsCloseInfo>((resolve) => {
      ws.once('close', (code: number, reason: Buffer) => {
        this.closeInfo = { code, reason: reason.toString('utf8') };
        resolve(this.closeInfo);
      });
    });
    ws.on('error', () => {}); // a drop surfaces as close 1006
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      for (const fn of this.activity) fn();
      if (this.handler) this.handler(buf, isBinary);
      else this.early?.push([buf, isBinary]);
    });
  }

  /** Connect; HTTP refusals at the upgrade become typed errors, network failures retryable ones. */
  static open(opts: OpenWsOptions): Promise<WsSession> {
    const { provider, signal } = opts;
    const secrets = opts.secrets ?? [];
    return new Promise<WsSession>((resolve, reject) => {
      if (signal.aborted) return reject(abortError(provider, signal));
      const ws = new WebSocket(opts.url, { headers: opts.headers ?? {}, handshakeTimeout: opts.connectTimeoutMs, perMessageDeflate: false });
      let done = false;
      const finish = (err: Error | null) => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        if (err) {
          ws.removeAllListeners('open');
          ws.on('error', () => {});
          if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.terminate();
          reject(err);
        } else resolve(new WsSession(ws, provider));
      };
      const onAbort = () => finish(abortError(provider, signal));
      signal.addEventListener('abort', onAbort, { once: true });
      ws.once('open', () => finish(null));
      ws.once('unexpected-response', (_req, res: IncomingMessage) => {
        const parts: Buffer[] = [];
        let size = 0;
        res.on('data', (d: Buffer) => {
          if (size < 4096) parts.push(d);
          size += d.length;
        });
        const fail = () => {
          const body = redact(Buffer.concat(parts).toString('utf8').slice(0, 300).trim(), secrets);
          const status = res.statusCode ?? 0;
          finish(httpStatusError(provider, status, `at WebSocket upgrade${body ? `: ${body}` : ''}`, res.headers['retry-after']));
        };
        res.once('end', fail);
        res.once('error', fail);
        res.once('aborted', fail);
      });
      ws.once('error', (e: Error & { code?: string }) => {
        const msg = redact(e.message, secrets);
        if (/timed out/i.test(msg)) finish(new ProviderTimeoutError(`${provider}: WebSocket handshake timed out after ${opts.connectTimeoutMs} ms`, { cause: e }));
        else finish(new ProviderUnavailableError(`${provider}: cannot connect (${e.code ?? msg})`, { cause: e }));
      });
      ws.once('close', (code: number) => finish(new ProviderUnavailableError(`${provider}: connection closed ${code} during the handshake`, { status: code })));
    });
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  get closeState(): WsCloseInfo | undefined {
    return this.closeInfo;
  }

  /** The message handler (one per session); messages received before it was set are replayed. */
  onMessage(fn: (data: Buffer, isBinary: boolean) => void): void {
    this.handler = fn;
    const early = this.early ?? [];
    this.early = null;
    for (const [buf, isBinary] of early) fn(buf, isBinary);
  }

  /** Call `fn` on every message from the server, of any kind (for `withinProgress`); returns the unsubscribe. */
  onActivity(fn: () => void): () => void {
    this.activity.add(fn);
    return () => this.activity.delete(fn);
  }

  /** Send a frame; resolves once it is handed to the socket. Rejects when the socket is not open. */
  send(data: Buffer | string): Promise<void> {
    if (this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ProviderUnavailableError(`${this.provider}: cannot send, the connection is closed`));
    }
    return new Promise<void>((resolve, reject) => {
      this.ws.send(data, { binary: typeof data !== 'string' }, (err) => {
        if (err) reject(new ProviderUnavailableError(`${this.provider}: send failed: ${err.message}`, { cause: err }));
        else resolve();
      });
    });
  }

  /** Close with a close frame, then wait (bounded) for the server's; drops the socket after that. */
  async close(code = 1000, reason = '', waitMs = 2000): Promise<WsCloseInfo | undefined> {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code, reason);
    let timer: NodeJS.Timeout | undefined;
    const info = await Promise.race([
      this.closed,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), waitMs);
      }),
    ]);
    if (timer) clearTimeout(timer);
    if (!info) this.ws.terminate();
    return info;
  }

  /** Drop the socket at once (no close handshake). */
  terminate(): void {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
  }
}
