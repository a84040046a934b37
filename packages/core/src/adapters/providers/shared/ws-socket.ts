/**
 * The one WebSocket wrapper of the streaming clients (AssemblyAI, Fireworks, Deepgram live): opening
 * with a bounded handshake whose HTTP refusals become typed errors (a provider refuses a bad key, a
 * spent balance or a full concurrency cap with a plain HTTP answer before the upgrade; without an
 * 'unexpected-response' listener ws would report an opaque 1006, deepgram js-sdk#353), awaited sends,
 * the close code as a promise, messages that arrive before a handler is attached, and per-message
 * activity for the finalize waits.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { ProviderTimeoutError, ProviderUnavailableError, type ScribeError } from '../../../domain/errors';
import { abortError, httpStatusError } from './http-errors';
import { redact } from './redact';

export interface WsCloseInfo {
  code: number;
  reason: string;
}

/** An HTTP answer instead of the upgrade: status, headers and the start of the body (UTF-8). */
export interface WsRefusal {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
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
  /**
   * A refusal at the upgrade as a typed error, for providers whose refusals say more than the status
   * (Deepgram's `dg-error` header and error bodies). Default: `httpStatusError` with the first 300
   * characters of the body, redacted, and Retry-After honoured. The hook redacts what it quotes.
   */
  refusal?: (r: WsRefusal) => ScribeError;
}

/** How much of a refusal's body is kept: enough for a JSON error body, not a whole error page. */
const REFUSAL_BODY_BYTES = 8192;

/** A header's first value. */
export function firstHeader(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The default classification of a refusal (see `OpenWsOptions.refusal`). */
function statusRefusal(provider: string, secrets: readonly string[]): (r: WsRefusal) => ScribeError {
  return ({ status, headers, body }) => {
    const text = redact(body.slice(0, 300).trim(), secrets);
    return httpStatusError(provider, status, `at WebSocket upgrade${text ? `: ${text}` : ''}`, headers['retry-after']);
  };
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
    private readonly upgradeHeaders: IncomingHttpHeaders,
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
    const refusal = opts.refusal ?? statusRefusal(provider, secrets);
    return new Promise<WsSession>((resolve, reject) => {
      if (signal.aborted) return reject(abortError(provider, signal));
      const ws = new WebSocket(opts.url, { headers: opts.headers ?? {}, handshakeTimeout: opts.connectTimeoutMs, perMessageDeflate: false });
      let upgradeHeaders: IncomingHttpHeaders = {};
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
        } else resolve(new WsSession(ws, provider, upgradeHeaders));
      };
      const onAbort = () => finish(abortError(provider, signal));
      signal.addEventListener('abort', onAbort, { once: true });
      ws.once('upgrade', (res: IncomingMessage) => {
        upgradeHeaders = res.headers;
      });
      ws.once('open', () => finish(null));
      ws.once('unexpected-response', (_req, res: IncomingMessage) => {
        const parts: Buffer[] = [];
        let size = 0;
        res.on('data', (d: Buffer) => {
          if (size < REFUSAL_BODY_BYTES) parts.push(d);
          size += d.length;
        });
        const fail = () => finish(refusal({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }));
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

  /** A header of the server's 101 answer (e.g. Deepgram's `dg-request-id`). */
  upgradeHeader(name: string): string | undefined {
    return firstHeader(this.upgradeHeaders, name);
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

  /**
   * Close our side without waiting (abort, failure): a close frame `1000 client closing`, the socket
   * dropped 2 s later if the server has not answered; a socket still connecting is dropped at once.
   */
  shutdown(): void {
    if (this.ws.readyState === WebSocket.OPEN) {
      this.ws.close(1000, 'client closing');
      setTimeout(() => this.ws.terminate(), 2000).unref();
    } else if (this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.terminate();
    }
  }

  /** Drop the socket at once (no close handshake). */
  terminate(): void {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
  }
}
