import { createHash, type Hash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import type { Source } from '../domain/job-spec';
import type { AudioInput } from '../ports/provider';
import type { Storage } from '../ports/storage';
import { decodeToPcm } from './ffmpeg-decoder';

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
}

/** AudioInput over an S3 object: every accessor streams from storage, pinned to the job's ETag. */
export function storageAudioInput(storage: Storage, source: Source, opts: { spoolDir?: string; presignSeconds?: number } = {}): StorageAudioInput {
  let sha256: string | undefined;
  const open = async (signal?: AbortSignal): Promise<{ stream: Readable; info: { contentType?: string } }> => {
    const getOpts = source.versionId ? { ifMatch: source.etag, versionId: source.versionId } : { ifMatch: source.etag };
    const { body, info } = await storage.get(source.bucket, source.key, getOpts);
    const tap = new HashTap();
    tap.on('end', () => {
      if (tap.digest) sha256 = tap.digest;
    });
    body.on('error', (e) => tap.destroy(e));
    signal?.addEventListener('abort', () => body.destroy(signal.reason as Error), { once: true });
    return { stream: body.pipe(tap), info: info.contentType ? { contentType: info.contentType } : {} };
  };
  const filename = source.key.split('/').pop() || 'audio';
  const input: StorageAudioInput = {
    get sha256() {
      return sha256;
    },
    async *pcm(signal?: AbortSignal) {
      const { stream } = await open(signal);
      const decodeOpts: { signal?: AbortSignal; spoolDir?: string } = {};
      if (signal) decodeOpts.signal = signal;
      if (opts.spoolDir) decodeOpts.spoolDir = opts.spoolDir;
      yield* decodeToPcm(stream, decodeOpts);
    },
    async original(signal?: AbortSignal) {
      const { stream, info } = await open(signal);
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
