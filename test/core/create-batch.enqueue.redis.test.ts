import { Redis } from 'ioredis';
import { BucketNotAllowedError, InvalidS3UrlError, UnknownProviderError, UnsupportedCombinationError } from '@scribe-fleet/core';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { enqueuePrefix } from '@scribe-fleet/producer';
import { testStorage, uniqueBucket } from '../helpers/env';
import { testConfig } from '../helpers/fleet';

jest.setTimeout(180_000);

// The whole prefix in one call: a backlog window above its size (the drip feed is test/fleet/drip-feed.test.ts).
const config = testConfig({ BACKLOG_PER_BUCKET: '100000' });
const storage = testStorage();
const redis = new Redis(config.REDIS_URL);
const fleet = new FleetQueues(config, redis);
const bucket = uniqueBucket('enq');

afterAll(async () => {
  await fleet.close();
  redis.disconnect();
});

async function putMany(prefix: string, n: number) {
  const keys = Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(5, '0')}.wav`);
  for (let i = 0; i < keys.length; i += 50) {
    await Promise.all(keys.slice(i, i + 50).map((k) => storage.put(bucket, k, Buffer.from(k))));
  }
}

it('enqueues every one of 2 500 keys once, and again adds nothing', async () => {
  await storage.ensureBucket(bucket);
  await putMany('archive/', 2500);
  await storage.put(bucket, 'archive/out/already.json', '{}'); // under the output prefix: skipped
  await storage.put(bucket, 'archive/folder/', ''); // folder marker: skipped
  const pages: number[] = [];
  const req = { source: `s3://${bucket}/archive/`, out: `s3://${bucket}/archive/out/` };
  const first = await enqueuePrefix(req, { storage, fleet, onProgress: (p) => pages.push(p.listed) });
  expect(first).toMatchObject({ listed: 2502, ignored: 2, skipped: 0, added: 2500, duplicates: 0 });
  expect(new Set(first.jobIds).size).toBe(2500);
  expect(pages.length).toBeGreaterThanOrEqual(3);
  const queues = await fleet.allQueues();
  expect(queues.map((q) => q.name)).toEqual([`${config.QUEUE_NAME}.local.default.default.batch`]);
  expect(await queues[0]!.getWaitingCount()).toBe(2500);

  const second = await enqueuePrefix(req, { storage, fleet });
  expect(second).toMatchObject({ added: 0, duplicates: 2500 });
  expect(second.jobIds).toEqual(first.jobIds);
  expect(await queues[0]!.getWaitingCount()).toBe(2500);

  const job = await fleet.getJob(first.jobIds[0]!);
  expect(job!.data).toMatchObject({ provider: 'local', mode: 'batch', output: { bucket, keyBase: 'archive/out/00000.wav' } });
  expect(JSON.stringify(job!.data)).not.toMatch(/S3RVER|secret/i);
});

it('a changed object (new ETag) is a new job', async () => {
  const b = uniqueBucket('enq2');
  await storage.ensureBucket(b);
  await storage.put(b, 'x/a.wav', 'one');
  const q = new FleetQueues(testConfig(), redis);
  try {
    const r1 = await enqueuePrefix({ source: `s3://${b}/x/`, out: `s3://${b}/y/` }, { storage, fleet: q });
    await storage.put(b, 'x/a.wav', 'two');
    const r2 = await enqueuePrefix({ source: `s3://${b}/x/`, out: `s3://${b}/y/` }, { storage, fleet: q });
    expect(r2.added).toBe(1);
    expect(r2.jobIds[0]).not.toBe(r1.jobIds[0]);
  } finally {
    await q.close();
  }
});

it('refuses bad requests before enqueuing anything', async () => {
  const restricted = new FleetQueues(testConfig({ S3_ALLOWED_BUCKETS: bucket }), redis);
  const deps = { storage, fleet: restricted };
  await expect(enqueuePrefix({ source: 'http://nope', out: `s3://${bucket}/o/` }, deps)).rejects.toBeInstanceOf(InvalidS3UrlError);
  await expect(enqueuePrefix({ source: 's3://other-bucket/x/', out: `s3://${bucket}/o/` }, deps)).rejects.toBeInstanceOf(BucketNotAllowedError);
  await expect(
    enqueuePrefix({ source: `s3://${bucket}/archive/`, out: `s3://${bucket}/o/`, provider: 'deepgram', model: 'whisper-large', mode: 'stream' }, deps),
  ).rejects.toBeInstanceOf(UnsupportedCombinationError);
  await expect(enqueuePrefix({ source: `s3://${bucket}/archive/`, out: `s3://${bucket}/o/`, provider: 'nope' }, deps)).rejects.toBeInstanceOf(UnknownProviderError);
  expect(await restricted.allQueues()).toEqual([]);
  await restricted.close();
});
