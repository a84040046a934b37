import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Readable } from 'node:stream';
import { SourceChangedError, SourceNotFoundError, StorageUnavailableError } from '../../domain/errors';
import type { GetOptions, ObjectInfo, PutOptions, Storage } from '../../ports/storage';

export interface S3StorageOptions {
  /** Custom endpoint (s3rver, MinIO, ...). Path-style addressing is the default when one is given. */
  endpoint?: string;
  region: string;
  /** Both or neither; without them the SDK's default credential chain is used. */
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle?: boolean;
}

/** `Storage` over the AWS SDK v3; works against AWS S3 and s3rver (see the quirks noted inline). */
export class S3Storage implements Storage {
  readonly client: S3Client;

  /** Pass options, or an S3Client you configured yourself (then set the checksum options below on it). */
  constructor(opts: S3StorageOptions | S3Client) {
    this.client =
      opts instanceof S3Client
        ? opts
        : new S3Client({
            region: opts.region,
            ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
            forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
            ...(opts.accessKeyId && opts.secretAccessKey
              ? { credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey } }
              : {}),
            // Since SDK 3.729 the default (WHEN_SUPPORTED) sends streamed bodies aws-chunked with a
            // CRC32 trailer. s3rver does not decode aws-chunked: it stores the chunk framing as the
            // object's bytes (silent corruption). Only checksum when an operation requires it.
            requestChecksumCalculation: 'WHEN_REQUIRED',
            responseChecksumValidation: 'WHEN_REQUIRED',
          });
  }

  async *listPages(
    bucket: string,
    prefix: string,
    opts: { pageSize?: number; startAfter?: string } = {},
  ): AsyncIterable<ObjectInfo[]> {
    const pageSize = Math.max(1, Math.min(1000, opts.pageSize ?? 1000));
    let token: string | undefined;
    do {
      const res = await this.call(
        () =>
          this.client.send(
            new ListObjectsV2Command({
              Bucket: bucket,
              Prefix: prefix,
              MaxKeys: pageSize,
              ...(token ? { ContinuationToken: token } : opts.startAfter ? { StartAfter: opts.startAfter } : {}),
            }),
          ),
        bucket,
        prefix,
      );
      const page: ObjectInfo[] = [];
      for (const o of res.Contents ?? []) {
        if (o.Key === undefined) continue;
        page.push({
          bucket,
          key: o.Key,
          etag: unquote(o.ETag),
          size: o.Size ?? 0,
          ...(o.LastModified ? { lastModified: o.LastModified } : {}),
        });
      }
      if (page.length > 0) yield page;
      // A truncated page without a token would loop forever: stop instead.
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  }

  async head(bucket: string, key: string): Promise<ObjectInfo | null> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return info(bucket, key, res);
    } catch (err) {
      if (status(err) === 404) return null;
      throw mapError(err, bucket, key);
    }
  }

  async get(bucket: string, key: string, opts: GetOptions = {}): Promise<{ body: Readable; info: ObjectInfo }> {
    const res = await this.call(
      () =>
        this.client.send(
          new GetObjectCommand({
            Bucket: bucket,
            Key: key,
            ...(opts.ifMatch ? { IfMatch: `"${unquote(opts.ifMatch)}"` } : {}),
            ...(opts.versionId ? { VersionId: opts.versionId } : {}),
            ...(opts.range ? { Range: opts.range } : {}),
          }),
        ),
      bucket,
      key,
    );
    const body = res.Body;
    if (!(body instanceof Readable)) throw new StorageUnavailableError(`s3://${bucket}/${key}: response has no body stream`);
    const got = info(bucket, key, res);
    // s3rver ignores If-Match on GET (AWS answers 412), so check the ETag we actually got as well.
    if (opts.ifMatch && got.etag !== unquote(opts.ifMatch)) {
      body.destroy();
      throw new SourceChangedError(`s3://${bucket}/${key} changed: ETag is ${got.etag}, expected ${unquote(opts.ifMatch)}`, {
        details: { bucket, key },
      });
    }
    return { body, info: got };
  }

  async put(bucket: string, key: string, body: string | Uint8Array | Readable, opts: PutOptions = {}): Promise<{ etag: string }> {
    const input: PutObjectCommandInput = {
      Bucket: bucket,
      Key: key,
      Body: body,
      ...(opts.contentType ? { ContentType: opts.contentType } : {}),
      ...(opts.contentLength !== undefined ? { ContentLength: opts.contentLength } : {}),
      ...(opts.metadata ? { Metadata: opts.metadata } : {}),
    };
    if (body instanceof Readable && opts.contentLength === undefined) {
      // Unknown length: lib-storage buffers 5 MiB parts (one PutObject if the stream is shorter,
      // otherwise a multipart upload that it aborts on failure).
      const res = await this.call(() => new Upload({ client: this.client, params: input, queueSize: 4 }).done(), bucket, key);
      return { etag: unquote(res.ETag) };
    }
    const res = await this.call(() => this.client.send(new PutObjectCommand(input)), bucket, key);
    return { etag: unquote(res.ETag) };
  }

  async putIfAbsent(bucket: string, key: string, body: string | Uint8Array, opts: PutOptions = {}): Promise<boolean> {
    // s3rver ignores `If-None-Match: *` on PUT and would overwrite, so look first. Race window: a
    // writer that lands between this HEAD and our PUT is overwritten on s3rver; on AWS S3 the
    // conditional header closes that window (412 -> false).
    if (await this.head(bucket, key)) return false;
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: body,
          IfNoneMatch: '*',
          ...(opts.contentType ? { ContentType: opts.contentType } : {}),
        }),
      );
      return true;
    } catch (err) {
      if (status(err) === 412) return false;
      throw mapError(err, bucket, key);
    }
  }

  async delete(bucket: string, key: string): Promise<void> {
    await this.call(() => this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })), bucket, key);
  }

  presignGet(bucket: string, key: string, expiresInSeconds: number): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: expiresInSeconds });
  }

  async ensureBucket(bucket: string): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: bucket }));
      return;
    } catch (err) {
      if (status(err) !== 404) throw mapError(err, bucket);
    }
    const region = await this.client.config.region();
    try {
      await this.client.send(
        new CreateBucketCommand({
          Bucket: bucket,
          // us-east-1 is the one region that must not be named here.
          ...(region && region !== 'us-east-1' ? { CreateBucketConfiguration: { LocationConstraint: region as never } } : {}),
        }),
      );
    } catch (err) {
      const name = (err as { name?: string }).name;
      if (name === 'BucketAlreadyOwnedByYou') return; // created concurrently
      // s3rver says BucketAlreadyExists for our own buckets too; on AWS it means someone else's.
      // Either way, it is fine iff we can now HEAD it.
      if (name !== 'BucketAlreadyExists') throw mapError(err, bucket);
      await this.call(() => this.client.send(new HeadBucketCommand({ Bucket: bucket })), bucket);
    }
  }

  /** Closes the client's sockets. */
  destroy(): void {
    this.client.destroy();
  }

  private async call<T>(fn: () => Promise<T>, bucket: string, key?: string): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw mapError(err, bucket, key);
    }
  }
}

function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/^(W\/)?"(.*)"$/, '$2');
}

function info(
  bucket: string,
  key: string,
  res: { ETag?: string; ContentLength?: number; VersionId?: string; LastModified?: Date; ContentType?: string },
): ObjectInfo {
  return {
    bucket,
    key,
    etag: unquote(res.ETag),
    size: res.ContentLength ?? 0,
    ...(res.VersionId ? { versionId: res.VersionId } : {}),
    ...(res.LastModified ? { lastModified: res.LastModified } : {}),
    ...(res.ContentType ? { contentType: res.ContentType } : {}),
  };
}

/** HTTP status of an SDK error, undefined for network-level failures. */
function status(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

/** SDK error -> domain error. Messages carry bucket/key and the SDK message, never credentials. */
function mapError(err: unknown, bucket: string, key?: string): Error {
  const where = key === undefined ? `s3://${bucket}` : `s3://${bucket}/${key}`;
  const code = status(err);
  const name = (err as { name?: string } | null)?.name ?? 'Error';
  const message = `${where}: ${name}: ${err instanceof Error ? err.message : String(err)}`;
  const opts = { cause: err, details: { bucket, ...(key === undefined ? {} : { key }) }, ...(code ? { status: code } : {}) };
  if (code === 412) return new SourceChangedError(message, opts);
  if (code === 404 || name === 'NoSuchKey' || name === 'NoSuchBucket') return new SourceNotFoundError(message, opts);
  // No status = the request never got an HTTP answer (ECONNREFUSED, reset, timeout).
  // 409 ConditionalRequestConflict (concurrent conditional write on AWS) is worth a retry too.
  if (code === undefined || code >= 500 || code === 429 || code === 409) return new StorageUnavailableError(message, opts);
  return err instanceof Error ? err : new Error(message);
}
