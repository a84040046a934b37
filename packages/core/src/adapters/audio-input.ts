import { createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { EmptyDecodeError, type ScribeError } from '../domain/errors';
import type { Source } from '../domain/job-spec';
import type { AudioInput } from '../ports/provider';
import type { GetOptions, Storage } from '../ports/storage';
import { noopTelemetry, type Telemetry } from '../ports/telemetry';
import { PCM_BYTES_PER_SECOND } from '../domain/pacing';
import { decodeToPcm, needsSpooling } from './ffmpeg-decoder';

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

export interface StorageAudioInput extends AudioInput {
  /** sha256 of the original bytes, known once one stream of the original has been read to the end. */
  readonly sha256: string | undefined;
  /**
   * Work that needs no provider slot, done before one is taken: inputs that need seeking (mp4/m4a,
   * sniffed from their first bytes) are downloaded to a spool file now, so later decodes read it.
   */
  prepare(signal?: AbortSignal): Promise<void>;
  /**
   * Open the original's GET now (before a slot is taken), so the session starts without waiting for
   * storage. Used by `original()` if it is younger than `maxAgeMs` (an idle S3 response should not be
   * held for long); otherwise dropped and reopened.
   */
  prefetchOriginal(maxAgeMs?: number): void;
  /** Remove the spool file and any unused prefetched stream. */
  dispose(): Promise<void>;
}

/** AudioInput over an S3 object: every accessor streams from storage, pinned to the job's ETag. */
export function storageAudioInput(storage: Storage, source: Source, opts: { spoolDir?: string; presignSeconds?: number; telemetry?: Telemetry } = {}): StorageAudioInput {
  let sha256: string | undefined;
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
  let prefetched: { at: number; maxAgeMs: number; opening: ReturnType<typeof open> } | undefined;
  const dropPrefetched = () => {
    prefetched?.opening.then((o) => o.stream.destroy(), () => undefined);
    prefetched = undefined;
  };
  const input: StorageAudioInput = {
    get sha256() {
      return sha256;
    },
    async prepare(signal?: AbortSignal) {
      if (source.size === 0) throw new EmptyDecodeError('the input is empty (0 bytes): nothing to decode');
      let body: Readable;
      try {
        ({ body } = await get({ ifMatch: source.etag, range: 'bytes=0-15', ...(source.versionId ? { versionId: source.versionId } : {}) }));
      } catch (e) {
        // 416: no byte 0 to range over, i.e. an empty object.
        if ((e as ScribeError).status === 416 || ((e as Error).cause as { name?: string } | undefined)?.name === 'InvalidRange') {
          throw new EmptyDecodeError('the input is empty (0 bytes): nothing to decode');
        }
        throw e;
      }
      const parts: Buffer[] = [];
      for await (const c of body) parts.push(c as Buffer);
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
    async *pcm(signal?: AbortSignal) {
      // A `decode` span from the first read to the last PCM byte (for a stream, about the audio's length).
      const span = telemetry.startSpan('decode', { 'scribe.decode.spooled': spoolFile !== undefined });
      let bytes = 0;
      const decoded = async function* (): AsyncIterable<Buffer> {
        if (spoolFile) {
          yield* decodeToPcm({ path: spoolFile }, signal ? { signal } : {});
          return;
        }
        const { stream } = await open(signal);
        const decodeOpts: { signal?: AbortSignal; spoolDir?: string } = {};
        if (signal) decodeOpts.signal = signal;
        if (opts.spoolDir) decodeOpts.spoolDir = opts.spoolDir;
        yield* decodeToPcm(stream, decodeOpts);
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
        span.setAttributes({ 'scribe.decode.pcm_bytes': bytes, 'scribe.decode.audio_seconds': bytes / PCM_BYTES_PER_SECOND });
        span.end();
      }
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
