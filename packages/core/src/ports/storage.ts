import type { Readable } from 'node:stream';

export interface ObjectInfo {
  bucket: string;
  key: string;
  /** Bare ETag (no quotes). */
  etag: string;
  size: number;
  versionId?: string;
  lastModified?: Date;
  contentType?: string;
}

export interface GetOptions {
  /** Fail with SourceChangedError unless the object still has this ETag. */
  ifMatch?: string;
  versionId?: string;
  /** An HTTP byte range, e.g. `bytes=0-15`. */
  range?: string;
}

export interface PutOptions {
  contentType?: string;
  /** Needed for streamed bodies of known length (a single PutObject); omit to use multipart upload. */
  contentLength?: number;
  /** User metadata (`x-amz-meta-*`): outputs carry the attempt that wrote them (`scribe-attempt`). */
  metadata?: Record<string, string>;
}

/** Storage port: the S3 API as the fleet uses it. */
export interface Storage {
  /** Pages of objects under a prefix, in key order; every page is at most `pageSize` (≤ 1000) objects. */
  listPages(bucket: string, prefix: string, opts?: { pageSize?: number; startAfter?: string }): AsyncIterable<ObjectInfo[]>;
  head(bucket: string, key: string): Promise<ObjectInfo | null>;
  /** Streams the object (never buffers it whole). */
  get(bucket: string, key: string, opts?: GetOptions): Promise<{ body: Readable; info: ObjectInfo }>;
  put(bucket: string, key: string, body: string | Uint8Array | Readable, opts?: PutOptions): Promise<{ etag: string }>;
  /** Write only if no object exists at the key; returns false (and writes nothing) if one does. */
  putIfAbsent(bucket: string, key: string, body: string | Uint8Array, opts?: PutOptions): Promise<boolean>;
  delete(bucket: string, key: string): Promise<void>;
  /** A time-limited GET URL a provider can fetch the object from. */
  presignGet(bucket: string, key: string, expiresInSeconds: number): Promise<string>;
  ensureBucket(bucket: string): Promise<void>;
}
