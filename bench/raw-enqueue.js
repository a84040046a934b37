#!/usr/bin/env node
// The obvious alternative to `scribe enqueue`, for bench/enqueue.js: list a prefix with the AWS SDK
// (ListObjectsV2, 1 000 keys a page) and add one BullMQ job per object with `addBulk` per page, one
// after the other, and nothing else: no skip check, no batch books, no validation.
//
//   REDIS_URL=… S3_ENDPOINT=… S3_ACCESS_KEY_ID=… S3_SECRET_ACCESS_KEY=… S3_REGION=… \
//     node bench/raw-enqueue.js <bucket> <prefix> <queue name>
//
// Prints one JSON line: jobs, seconds listing, seconds in addBulk, total seconds (from the first
// list call to the last addBulk's answer; module loading and connecting are not counted).
'use strict';
const { createHash } = require('node:crypto');
const { S3Client, ListObjectsV2Command } = require('@aws-sdk/client-s3');
const { Queue } = require('bullmq');
const IORedis = require('ioredis');

async function main() {
  const [bucket, prefix, queueName] = process.argv.slice(2);
  if (!bucket || prefix === undefined || !queueName) throw new Error('usage: raw-enqueue.js <bucket> <prefix> <queue name>');
  const s3 = new S3Client({
    endpoint: process.env.S3_ENDPOINT,
    region: process.env.S3_REGION ?? 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: process.env.S3_ACCESS_KEY_ID, secretAccessKey: process.env.S3_SECRET_ACCESS_KEY },
  });
  const connection = new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null });
  const queue = new Queue(queueName, { connection, prefix: 'bench-raw' });
  await queue.waitUntilReady();

  let listSeconds = 0;
  let addSeconds = 0;
  let jobs = 0;
  let token;
  const t0 = performance.now();
  do {
    const l0 = performance.now();
    const res = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 1000, ...(token ? { ContinuationToken: token } : {}) }));
    const a0 = performance.now();
    listSeconds += (a0 - l0) / 1000;
    const page = (res.Contents ?? []).filter((o) => !o.Key.endsWith('/'));
    await queue.addBulk(
      page.map((o) => {
        const etag = (o.ETag ?? '').replace(/"/g, '');
        return {
          name: 'transcribe',
          data: { bucket, key: o.Key, etag, size: o.Size },
          // The obvious idempotent id: enqueuing the same object twice adds nothing.
          opts: { jobId: `raw_${createHash('sha1').update(`${bucket}\n${o.Key}\n${etag}`).digest('hex')}` },
        };
      }),
    );
    addSeconds += (performance.now() - a0) / 1000;
    jobs += page.length;
    token = res.IsTruncated ? res.NextContinuationToken : undefined;
  } while (token);
  const seconds = (performance.now() - t0) / 1000;
  await queue.close();
  await connection.quit();
  s3.destroy();
  process.stdout.write(`${JSON.stringify({ jobs, listSeconds, addSeconds, seconds })}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
