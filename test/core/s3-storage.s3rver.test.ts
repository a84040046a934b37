import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { SourceChangedError, SourceNotFoundError } from '@scribe-fleet/core';
import type { S3Storage } from '@scribe-fleet/core/adapters/s3/s3-storage';
import { testStorage, uniqueBucket } from '../helpers/env';

// The project-level `testTimeout` in jest.config.js is ignored by jest-circus 30 (it only reads the
// global one), so set it here.
jest.setTimeout(120_000);

let storage: S3Storage;
let bucket: string;

beforeAll(async () => {
  storage = testStorage();
  bucket = uniqueBucket('s3-storage');
  await storage.ensureBucket(bucket);
  await storage.ensureBucket(bucket); // idempotent
});

afterAll(() => storage.destroy());

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: limit }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(lanes);
}

/** A byte stream of unknown length (not object mode), 64 KiB per chunk. */
function streamOf(data: Buffer, chunk = 64 * 1024): Readable {
  let offset = 0;
  return new Readable({
    read() {
      if (offset >= data.length) return void this.push(null);
      this.push(data.subarray(offset, offset + chunk));
      offset += chunk;
    },
  });
}

async function sha256(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const digest = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('S3Storage against s3rver', () => {
  test('lists 2 500 keys under a prefix exactly once, in key order, in pages of at most 1000', async () => {
    const keys = Array.from({ length: 2500 }, (_, i) => `many/k-${String(i).padStart(5, '0')}`);
    const others = ['many-not/x', 'manz/y', 'a/z']; // share a textual prefix or sort around it
    await pool([...keys, ...others], 50, (key) => storage.put(bucket, key, `body of ${key}`));

    const listed: string[] = [];
    const pageSizes: number[] = [];
    for await (const page of storage.listPages(bucket, 'many/')) {
      pageSizes.push(page.length);
      for (const o of page) {
        expect(o.bucket).toBe(bucket);
        expect(o.size).toBe(`body of ${o.key}`.length);
        expect(o.etag).toMatch(/^[0-9a-f]{32}$/); // unquoted MD5
        listed.push(o.key);
      }
    }
    expect(pageSizes.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...pageSizes)).toBeLessThanOrEqual(1000);
    expect(listed).toHaveLength(2500);
    expect(new Set(listed).size).toBe(2500);
    expect(listed).toEqual(keys); // keys are zero-padded, so key order == index order

    const small: number[] = [];
    for await (const page of storage.listPages(bucket, 'many/', { pageSize: 700 })) small.push(page.length);
    expect(small).toEqual([700, 700, 700, 400]);

    const after: string[] = [];
    for await (const page of storage.listPages(bucket, 'many/', { startAfter: 'many/k-01999' })) after.push(...page.map((o) => o.key));
    expect(after).toEqual(keys.slice(2000));
  });

  test.each([
    ['unknown length, single PutObject via Upload', 3 * 1024 * 1024 + 12345, false],
    ['known contentLength, streamed PutObject', 3 * 1024 * 1024 + 12345, true],
    ['unknown length, multipart via Upload', 12 * 1024 * 1024 + 7, false],
  ])('streamed put (%s) reads back byte-identical', async (_label, size, withLength) => {
    const data = randomBytes(size);
    const key = `stream/${size}-${withLength}`;
    const put = await storage.put(bucket, key, streamOf(data), withLength ? { contentLength: size } : {});
    expect(put.etag).not.toMatch(/"/);

    const head = await storage.head(bucket, key);
    expect(head?.size).toBe(size);
    expect(head?.etag).toBe(put.etag);

    const { body, info } = await storage.get(bucket, key, { ifMatch: put.etag });
    expect(info.size).toBe(size);
    expect(await sha256(body)).toBe(digest(data));
  });

  test('putIfAbsent writes once and never overwrites', async () => {
    const key = 'once/marker.json';
    expect(await storage.putIfAbsent(bucket, key, 'first', { contentType: 'application/json' })).toBe(true);
    expect(await storage.putIfAbsent(bucket, key, 'second')).toBe(false);
    const { body, info } = await storage.get(bucket, key);
    expect(await sha256(body)).toBe(digest('first'));
    expect(info.contentType).toBe('application/json');
  });

  test('get: a wrong ifMatch is SourceChangedError, a missing key SourceNotFoundError', async () => {
    const { etag } = await storage.put(bucket, 'cond/a.txt', 'version 1');
    await storage.put(bucket, 'cond/a.txt', 'version 2');
    await expect(storage.get(bucket, 'cond/a.txt', { ifMatch: etag })).rejects.toBeInstanceOf(SourceChangedError);
    await expect(storage.get(bucket, 'cond/missing.txt')).rejects.toBeInstanceOf(SourceNotFoundError);
    await expect(storage.get(uniqueBucket('absent'), 'x')).rejects.toBeInstanceOf(SourceNotFoundError);
    expect(await storage.head(bucket, 'cond/missing.txt')).toBeNull();
  });

  test('delete removes the object', async () => {
    await storage.put(bucket, 'del/x', 'x');
    await storage.delete(bucket, 'del/x');
    expect(await storage.head(bucket, 'del/x')).toBeNull();
  });

  test('presignGet gives a URL a plain fetch can download', async () => {
    const data = randomBytes(100_000);
    await storage.put(bucket, 'presign/audio 1.bin', data);
    const url = await storage.presignGet(bucket, 'presign/audio 1.bin', 300);
    expect(url).toContain('X-Amz-Signature=');
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(digest(Buffer.from(await res.arrayBuffer()))).toBe(digest(data));
  });
});
