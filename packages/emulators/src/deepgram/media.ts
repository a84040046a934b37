/**
 * The media of a pre-recorded request (providers.md §1.1, §1.5): the body tap that hashes, counts and
 * caps it, the small JSON body, the emulator's own fetch of a `{"url"}` source, and the processing cap.
 */
import { createHash, type Hash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import { DgError, payloadTooLarge } from './errors';
import type { ResolvedDeepgramOptions } from './options';

/** Pass-through that hashes and counts bytes and refuses more than `max` (→ 413). */
export class BodyTap extends Transform {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;
  digest = '';
  constructor(private readonly max: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.max) {
      cb(payloadTooLarge(this.max));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    this.digest = this.hash.digest('hex');
    cb();
  }
}

const invalidJson = (details: string) => new DgError(400, 'INVALID_JSON', 'Invalid JSON submitted.', 'modern', details);

async function readSmall(req: IncomingMessage, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > max) throw invalidJson('Json deserialize error: body too large');
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

/** The `{"url"}` of a JSON body (malformed JSON or no http(s) url → 400 INVALID_JSON, modern shape). */
export async function readUrlBody(req: IncomingMessage): Promise<string> {
  const raw = await readSmall(req, 1024 * 1024);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw invalidJson(`Json deserialize error: ${(e as Error).message}`);
  }
  const u = (parsed as { url?: unknown } | null)?.url;
  if (typeof u !== 'string' || !/^https?:\/\//i.test(u)) {
    throw invalidJson('Json deserialize error: missing or invalid field `url` (expected an http(s) URI)');
  }
  return u;
}

/** The emulator fetches a `{"url"}` source itself; failures are legacy REMOTE_CONTENT_ERROR (§1.4). */
export async function fetchRemote(url: string, options: ResolvedDeepgramOptions, signal: AbortSignal): Promise<Readable> {
  const remoteError = (why: string) => new DgError(400, 'REMOTE_CONTENT_ERROR', `Could not download the media at the provided URL: ${why}`);
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(options.remoteFetchTimeoutMs)]) });
  } catch (e) {
    throw remoteError((e as Error).message);
  }
  if (!res.ok || !res.body) throw remoteError(`remote server answered HTTP ${res.status}`);
  const len = Number(res.headers.get('content-length') ?? NaN);
  if (len > options.maxBodyBytes) {
    await res.body.cancel();
    throw payloadTooLarge(options.maxBodyBytes, 'the media');
  }
  const stream = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  // A remote stream that breaks off is a remote-content problem, not corrupt audio.
  const out = new PassThrough();
  stream.on('error', (e) => out.destroy(remoteError(e.message)));
  return stream.pipe(out);
}

/** Rejects with 504 when processing runs `capMs` past the end of the upload. */
export function processingCap(tap: Transform, capMs: number, signal: AbortSignal): Promise<never> {
  return new Promise<never>((_, reject) => {
    const arm = () => {
      const timer = setTimeout(
        () => reject(new DgError(504, 'GATEWAY_TIMEOUT', `Gateway Timeout: processing exceeded the maximum processing time of ${Math.round(capMs / 1000)} s; the request was cancelled.`, 'text')),
        capMs,
      );
      signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
    };
    if (tap.readableEnded || tap.writableFinished) arm();
    else tap.once('finish', arm);
  });
}
