/**
 * A POST with a streamed request body that never loses an early response (providers.md Appendix A).
 *
 * A provider that refuses a request (401 bad key, 402 no credits, 429 over the cap, 413 too large,
 * 5xx) often answers as soon as it has read the headers and closes the connection without reading the
 * multi-MB body. Closing with unread data makes its kernel send a TCP RST, so the client's next body
 * write fails with EPIPE/ECONNRESET. The response is already in the client's receive queue, and the
 * kernel still hands it out after the RST. Node's sockets, though, destroy themselves on a write error,
 * which closes the fd and throws the unread response away (nodejs/node#12339, #21026, #54366). Both
 * `fetch` (undici) and a plain `http.request` lose the response to that race most of the time. A wrong
 * key then looks like a dropped connection (PROVIDER_UNAVAILABLE, retried) instead of PROVIDER_AUTH.
 *
 * `postStreaming` uses `node:http(s)` and holds back a body write's error until the socket's read side
 * has ended (EOF, read error or close), bounded by `WRITE_ERROR_HOLD_MS`. The response that arrived is
 * parsed first, and the write error only counts when no response came. It also stops uploading once a
 * response has started, because the server has already decided.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';

/** Longest a body write's error is held back waiting for the socket's read side to end. */
const WRITE_ERROR_HOLD_MS = 2000;
const GUARDED = Symbol('scribe.holdWriteErrors');

export interface StreamingPostOptions {
  headers: Record<string, string>;
  /** The request body, pulled as the socket takes it (backpressure). Ending early needs `signal`. */
  body: AsyncIterable<Uint8Array>;
  /** Aborting destroys the request; the promise rejects with the signal's reason. */
  signal: AbortSignal;
}

export interface StreamingPostResponse {
  status: number;
  statusText: string;
  headers: Headers;
  /** The response body as UTF-8. It may be partial when `complete` is false. */
  text: string;
  /** False when the connection ended before the whole response body arrived. */
  complete: boolean;
  /** True when the server answered before the whole request body was sent. */
  earlyResponse: boolean;
}

/** The connection failed and no response arrived. `code` is the socket error's code (ECONNRESET, EPIPE, …). */
export class NoResponseError extends Error {
  readonly code: string | undefined;
  constructor(cause: Error & { code?: string }) {
    super(`no response (${cause.code ?? cause.message})`, { cause });
    this.name = 'NoResponseError';
    this.code = cause.code;
  }
}

/**
 * Hold back a write error on `sock` until its read side has ended, so that a response already received
 * is read and parsed before Node destroys the socket. Idempotent (pooled sockets are reused).
 */
function holdWriteErrors(sock: Socket & { [GUARDED]?: true }): void {
  if (sock[GUARDED]) return;
  sock[GUARDED] = true;
  const hold = (cb: (error?: Error | null) => void) => (err?: Error | null) => {
    if (!err || sock.destroyed) return cb(err);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      clearTimeout(timer);
      sock.off('end', release);
      sock.off('close', release);
      cb(err);
    };
    sock.once('end', release);
    sock.once('close', release);
    const timer = setTimeout(release, WRITE_ERROR_HOLD_MS);
    timer.unref();
  };
  const write = sock._write.bind(sock);
  sock._write = (chunk, encoding, cb) => write(chunk, encoding, hold(cb));
  const writev = sock._writev?.bind(sock);
  if (writev) sock._writev = (chunks, cb) => writev(chunks, hold(cb));
}

function headersOf(raw: string[]): Headers {
  const h = new Headers();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    try {
      h.append(raw[i]!, raw[i + 1]!);
    } catch {
      // a header value the Fetch API refuses, which nothing here reads
    }
  }
  return h;
}

/**
 * POST `body` to `url` and resolve with the response (any status), even when the server answered
 * early and the upload was cut off. Rejects with `NoResponseError` when no response arrived, with the
 * signal's reason on abort, or with the body source's own error when reading the body failed.
 */
export function postStreaming(url: string, opts: StreamingPostOptions): Promise<StreamingPostResponse> {
  const { signal } = opts;
  if (signal.aborted) return Promise.reject(signal.reason);
  const target = new URL(url);
  const transport = target.protocol === 'https:' ? https : http;
  return new Promise<StreamingPostResponse>((resolve, reject) => {
    const req = transport.request(target, { method: 'POST', headers: opts.headers });
    let settled = false;
    let responded = false;
    let bodySent = false;
    const waiters: Array<() => void> = [];
    const wake = () => {
      for (const w of waiters.splice(0)) w();
    };
    const settle = (err: unknown, value?: StreamingPostResponse) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      wake();
      if (err !== null) {
        req.destroy();
        reject(err);
      } else {
        // An answer before the whole body went out: the connection cannot be reused.
        if (!bodySent) req.destroy();
        resolve(value!);
      }
    };
    const onAbort = () => settle(signal.reason ?? new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });

    req.on('socket', (sock: Socket) => holdWriteErrors(sock));
    req.on('drain', wake);
    req.on('close', wake);
    req.on('error', (e: Error & { code?: string }) => {
      // After a response, a reset is how the server ended it (the body may be partial).
      if (!responded) settle(new NoResponseError(e));
    });
    req.on('response', (res: http.IncomingMessage) => {
      responded = true;
      const earlyResponse = !bodySent;
      wake(); // the uploader stops
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      const done = () =>
        settle(null, {
          status: res.statusCode ?? 0,
          statusText: res.statusMessage ?? '',
          headers: headersOf(res.rawHeaders),
          text: Buffer.concat(parts).toString('utf8'),
          complete: res.complete,
          earlyResponse,
        });
      res.once('end', done);
      res.once('error', done);
      res.once('close', done);
    });

    const stopped = () => settled || responded || req.destroyed;
    void (async () => {
      for await (const chunk of opts.body) {
        if (stopped()) return; // leaving the loop ends the source (its finally runs)
        if (!req.write(chunk)) await new Promise<void>((r) => waiters.push(r));
        if (stopped()) return;
      }
      // A source that stopped early because its consumer aborted must not end the request cleanly.
      if (stopped() || signal.aborted) return;
      bodySent = true;
      req.end();
    })().catch((e: unknown) => settle(e));
  });
}
