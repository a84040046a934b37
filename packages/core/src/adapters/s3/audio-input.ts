import { createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { EmptyDecodeError, ScribeError, SourceChangedError, SourceNotFoundError, StorageUnavailableError } from '../../domain/errors';
import type { Source } from '../../domain/job-spec';
import type { AudioInput } from '../../ports/provider';
import type { StorageAudioInput, StorageAudioInputOptions } from '../../ports/audio-input';
import type { GetOptions, Storage } from '../../ports/storage';
import { noopTelemetry, type SpanHandle, type Telemetry } from '../../ports/telemetry';
import { PCM_BYTES_PER_SECOND } from '../../domain/pacing';
import { decodeToPcm, needsSpooling, type DecodeOptions, type DecodeWarning } from './ffmpeg-decoder';

/** A pass-through that hashes what flows by; the digest is available once the stream ends. */
class HashTap extends Transform {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;
  digest: string | undefined;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null, d?: Buffer) => void) {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
  override _flush(cb: () => void) {
    this.digest = this.hash.digest('hex');
    cb();
  }
}

// The port's types, re-exported for the adapter's existing importers.
export type { StorageAudioInput, StorageAudioInputOptions };

/** AudioInput over an S3 object: every accessor streams from storage, pinned to the job's ETag. */
export function storageAudioInput(storage: Storage, source: Source, opts: StorageAudioInputOptions = {}): StorageAudioInput {
  let sha256: string | undefined;
  const warnings = new Set<string>();
  const decodeOptions = (span: SpanHandle, signal?: AbortSignal): DecodeOptions => {
    const d: DecodeOptions = {
      onWarning: (w: DecodeWarning) => {
        warnings.add(w.code);
        span.addEvent('decode.warning', { 'scribe.decode.warning': w.code, 'scribe.decode.declared_seconds': w.declaredSeconds, 'scribe.decode.decoded_seconds': w.decodedSeconds });
      },
      onReport: (r) => span.setAttributes({ 'scribe.decode.declared_seconds': r.declared?.seconds, 'scribe.decode.declared_source': r.declared?.source, 'scribe.decode.truncated': r.truncated }),
    };
    if (signal) d.signal = signal;
    if (opts.spoolDir) d.spoolDir = opts.spoolDir;
    if (opts.truncationTolerance !== undefined) d.truncationTolerance = opts.truncationTolerance;
    if (opts.allowTruncated !== undefined) d.allowTruncated = opts.allowTruncated;
    return d;
  };
  const telemetry = opts.telemetry ?? noopTelemetry;
  // An `s3.get` span covers opening the object (until the response headers), not reading its body.
  const get = (getOpts: GetOptions) =>
    telemetry.span('s3.get', { 'aws.s3.bucket': source.bucket, 'scribe.s3.range': getOpts.range }, async (span) => {
      const res = await storage.get(source.bucket, source.key, getOpts);
      span.setAttributes({ 'scribe.s3.content_length': res.info.size });
      return res;
    });
  const open = async (signal?: AbortSignal): Promise<{ stream: Readable; info: { contentType?: string } }> => {
    const getOpts = source.versionId ? { ifMatch: source.etag, versionId: source.versionId } : { ifMatch: source.etag };
    const { body, info } = await get(getOpts);
    const tap = new HashTap();
    tap.on('end', () => {
      if (tap.digest) sha256 = tap.digest;
    });
    body.on('error', (e) => tap.destroy(e));
    signal?.addEventListener('abort', () => body.destroy(signal.reason as Error), { once: true });
    return { stream: body.pipe(tap), info: info.contentType ? { contentType: info.contentType } : {} };
  };
  const filename = source.key.split('/').pop() || 'audio';
  let spoolDir: string | undefined;
  let spoolFile: string | undefined;
  /**
   * The decoded PCM, from storage (or the spool file) through ffmpeg: mono, or the source's channels
   * interleaved when `onChannels` is given (told their number before the first chunk). A `decode` span
   * runs from the first read to the last PCM byte (for a stream, about the audio's length).
   */
  const decode = async function* (signal?: AbortSignal, onChannels?: (n: number) => void): AsyncGenerator<Buffer> {
    const span = telemetry.startSpan('decode', { 'scribe.decode.spooled': spoolFile !== undefined });
    let bytes = 0;
    let channels = 1;
    const options = decodeOptions(span, signal);
    if (onChannels) {
      options.keepChannels = true;
      options.onChannels = (n) => {
        channels = n;
        span.setAttributes({ 'scribe.decode.channels': n });
        onChannels(n);
      };
    }
    const decoded = async function* (): AsyncIterable<Buffer> {
      if (spoolFile) {
        yield* decodeToPcm({ path: spoolFile }, options);
        return;
      }
      const { stream } = await open(signal);
      yield* decodeToPcm(stream, options);
    };
    try {
      for await (const chunk of decoded()) {
        bytes += chunk.length;
        yield chunk;
      }
    } catch (e) {
      span.recordError(e);
      throw e;
    } finally {
      span.setAttributes({ 'scribe.decode.pcm_bytes': bytes, 'scribe.decode.audio_seconds': bytes / (PCM_BYTES_PER_SECOND * channels) });
      span.end();
    }
  };
  let prefetched: { at: number; maxAgeMs: number; opening: ReturnType<typeof open> } | undefined;
  const dropPrefetched = () => {
    prefetched?.opening.then((o) => o.stream.destroy(), () => undefined);
    prefetched = undefined;
  };
  const input: StorageAudioInput = {
    get sha256() {
      return sha256;
    },
    get warnings() {
      return [...warnings];
    },
    async prepare(signal?: AbortSignal) {
      let size = source.size;
      if (size === undefined) {
        // A job that does not know its size (a manifest without sizes) learns it from a HEAD, so an
        // empty object is never range-requested: S3 answers 416, but s3rver claims one byte and
        // then resets the connection (which would look like a transient storage error).
        const info = await storage.head(source.bucket, source.key);
        if (!info) throw new SourceNotFoundError(`s3://${source.bucket}/${source.key} does not exist`, { details: { bucket: source.bucket, key: source.key } });
        if (info.etag === source.etag) size = info.size;
        else if (!source.versionId) {
          throw new SourceChangedError(`s3://${source.bucket}/${source.key} changed: ETag is ${info.etag}, expected ${source.etag}`, { details: { bucket: source.bucket, key: source.key } });
        }
      }
      if (size === 0) throw new EmptyDecodeError('the input is empty (0 bytes): nothing to decode');
      let body: Readable;
      try {
        ({ body } = await get({ ifMatch: source.etag, range: 'bytes=0-15', ...(source.versionId ? { versionId: source.versionId } : {}) }));
      } catch (e) {
        // 416: no byte 0 to range over, i.e. an empty object (the job may not know its size).
        if (isInvalidRange(e)) {
          throw new EmptyDecodeError('the input is empty (0 bytes): nothing to decode');
        }
        throw e;
      }
      const parts: Buffer[] = [];
      try {
        for await (const c of body) parts.push(c as Buffer);
      } catch (e) {
        if (e instanceof ScribeError) throw e;
        throw new StorageUnavailableError(`s3://${source.bucket}/${source.key}: reading its first bytes failed: ${(e as Error).message}`, { cause: e });
      }
      if (!needsSpooling(Buffer.concat(parts))) return;
      spoolDir = await mkdtemp(join(opts.spoolDir ?? tmpdir(), 'scribe-spool-'));
      const file = join(spoolDir, 'input');
      const { stream } = await open(signal);
      await pipeline(stream, createWriteStream(file), signal ? { signal } : {});
      spoolFile = file;
    },
    prefetchOriginal(maxAgeMs = 5000) {
      dropPrefetched();
      const opening = open();
      opening.catch(() => undefined); // surfaced when original() uses it
      prefetched = { at: Date.now(), maxAgeMs, opening };
    },
    async dispose() {
      dropPrefetched();
      if (spoolDir) await rm(spoolDir, { recursive: true, force: true });
      spoolDir = spoolFile = undefined;
    },
    pcm: (signal?: AbortSignal) => decode(signal),
    async pcmChannels(signal?: AbortSignal) {
      let channels: number | undefined;
      const it = decode(signal, (n) => (channels = n));
      // The decoder tells the channel count before its first chunk (an input without audio throws here).
      const first = await it.next();
      if (first.done || channels === undefined) {
        await it.return(undefined);
        throw new EmptyDecodeError('decoding produced no audio samples');
      }
      let pending: Buffer | undefined = first.value;
      const iterator: AsyncIterator<Buffer> = {
        next: async () => {
          if (!pending) return it.next();
          const value = pending;
          pending = undefined;
          return { done: false, value };
        },
        return: async () => {
          pending = undefined;
          return it.return(undefined);
        },
      };
      return { channels, pcm: { [Symbol.asyncIterator]: () => iterator } };
    },
    async original(signal?: AbortSignal) {
      const fresh = prefetched && Date.now() - prefetched.at <= prefetched.maxAgeMs ? prefetched.opening : undefined;
      if (fresh) prefetched = undefined;
      else dropPrefetched();
      const { stream, info } = await (fresh ?? open(signal));
      if (fresh && signal) signal.addEventListener('abort', () => stream.destroy(signal.reason as Error), { once: true });
      const res: Awaited<ReturnType<AudioInput['original']>> = { stream, filename };
      if (source.size !== undefined) res.size = source.size;
      if (info.contentType) res.contentType = info.contentType;
      return res;
    },
    presignedUrl: () => storage.presignGet(source.bucket, source.key, opts.presignSeconds ?? 3600),
  };
  if (source.size !== undefined) input.size = source.size;
  return input;
}

/** A 416 Range Not Satisfiable from S3, as a ScribeError, a wrapped or a raw SDK error. */
function isInvalidRange(e: unknown): boolean {
  const err = e as (Partial<ScribeError> & { name?: string; cause?: unknown; $metadata?: { httpStatusCode?: number } }) | null;
  if (!err) return false;
  if (err.status === 416 || err.$metadata?.httpStatusCode === 416 || err.name === 'InvalidRange') return true;
  return err.cause !== undefined && err.cause !== e && isInvalidRange(err.cause);
}
