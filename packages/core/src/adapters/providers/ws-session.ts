/**
 * WebSocket plumbing shared by the streaming provider clients (AssemblyAI v3, Fireworks): opening a
 * session with a bounded handshake whose HTTP refusals become typed errors, awaiting sends, the close
 * code as a promise, and the small helpers every streaming client needs (deadline races, HTTP status
 * classification, Retry-After, key redaction, the last-chunk padding rule).
 */
import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
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
