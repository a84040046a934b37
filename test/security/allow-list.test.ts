/**
 * S3_ALLOWED_BUCKETS and the S3 URL rules hold for every bucket and key a batch touches, on the real
 * API, Redis, S3 server and an in-process worker (the local recogniser):
 *
 * - the producer: an output prefix that climbs out of its bucket (`s3://arch/../bad/x/`, which the S3
 *   server resolves into bucket `bad`), dot / empty / backslash / control-character keys (also
 *   percent-encoded), a manifest with one line in a foreign bucket or a bare key that climbs out of
 *   the default bucket: each refused with its code, nothing enqueued, nothing written anywhere;
 * - the worker: a spec planted directly in Redis (FleetQueues.add, no producer) whose source or
 *   output bucket is outside the worker's own S3_ALLOWED_BUCKETS, or whose output key base climbs out
 *   of its prefix, fails in one attempt with the code, and no storage call names the foreign bucket.
 *
 * Every worker here sees storage through a recorder (the real S3Storage, each call's bucket noted),
 * and a positive control in each part proves the same worker does read and write when allowed.
 */
import { Redis } from 'ioredis';
import { jobIdFor, normaliseEtag, parseJobSpec, type JobSpec } from '@scribe-fleet/core';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import type { S3Storage } from '@scribe-fleet/core/adapters/s3/s3-storage';
import { createDeps, startWorker, type RunningWorker } from '@scribe-fleet/worker';
import { startApi, waitBatch, type ApiHarness } from '../api/harness';
import { testStorage, uniqueBucket } from '../helpers/env';
import { sampleFiles, testConfig, uploadSamples, waitForJobs } from '../helpers/fleet';

jest.setTimeout(120_000);

const arch = uniqueBucket('arch');
/** Must stay empty: nothing may ever be written here. */
const bad = uniqueBucket('bad');
/** Holds a real audio file that nothing may read. */
const foreign = uniqueBucket('foreign');

const storage = testStorage();
const opened: S3Storage[] = [storage];
let samples: Awaited<ReturnType<typeof sampleFiles>>;

/** The real storage, with the bucket of every call recorded (`<method> <bucket>`). */
function recorded(calls: string[]): S3Storage {
  const real = testStorage();
  opened.push(real);
  return new Proxy(real, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function' || prop === 'constructor') return v;
      return (...args: unknown[]) => {
        if (typeof args[0] === 'string') calls.push(`${String(prop)} ${args[0]}`);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

async function keysOf(bucket: string, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  for await (const page of storage.listPages(bucket, prefix)) keys.push(...page.map((o) => o.key));
  return keys.sort();
}

const touched = (calls: string[], bucket: string) => calls.filter((c) => c.endsWith(` ${bucket}`));

beforeAll(async () => {
  samples = await sampleFiles([{ name: 'cli-one.wav', voice: 'kal16', format: 'wav', text: 'the quick brown fox jumps over the lazy dog' }]);
  await uploadSamples(storage, arch, 'in/', samples);
  await uploadSamples(storage, foreign, 'in/', samples);
  await storage.ensureBucket(bad);
});

afterAll(() => {
  for (const s of opened) s.destroy();
});

describe('the producer checks every bucket and key of a batch', () => {
  let api: ApiHarness;
  let worker: RunningWorker;
  const calls: string[] = [];

  beforeAll(async () => {
    api = await startApi({ S3_ALLOWED_BUCKETS: arch, JOB_ATTEMPTS: '1' });
    // A worker is running: anything a bypass enqueued would be transcribed and written.
    worker = startWorker(api.config, createDeps(api.config, { storage: recorded(calls) }));
  });

  afterAll(async () => {
    await worker?.close();
    await api?.close();
  });

  /** Nothing enqueued, no batch, nothing written to `bad` or under arch/out, no worker call on a foreign bucket. */
  async function expectNothingDone() {
    expect(await api.fleet.allQueues()).toEqual([]);
    expect(await api.service.batches.count()).toBe(0);
    expect(await keysOf(bad)).toEqual([]);
    expect(await keysOf(arch)).toEqual(['in/cli-one.wav']);
    expect(await keysOf(foreign)).toEqual(['in/cli-one.wav']);
    expect(calls).toEqual([]);
  }

  it('an output prefix that climbs out of its bucket → 400 INVALID_S3_URL; nothing written to the other bucket', async () => {
    for (const out of [`s3://${arch}/../${bad}/x/`, `s3://${arch}/o/../../${bad}/x/`, `s3://${arch}/%2e%2e/${bad}/x/`, `s3://${arch}/o/%2E%2E/%2e%2e/${bad}/x/`]) {
      const r = await api.call('POST', '/v1/batches', { body: { source: `s3://${arch}/in/`, out } });
      expect({ out, status: r.status, body: r.body }).toEqual({ out, status: 400, body: { error: { code: 'INVALID_S3_URL', message: expect.stringContaining('dot segment') } } });
    }
    await expectNothingDone();
  });

  it('dot, empty, backslash and control-character keys in source or out → 400 INVALID_S3_URL', async () => {
    const keys = ['./in/', 'in/./', 'in/../in/', '/in/', 'in//', 'in\\', 'in\\..\\x/', 'in\u0000/', 'in\n/', 'in\u007f/', 'in%00/', 'in%5c/', 'in/%2f%2f/', 'in/%2e/'];
    for (const key of keys) {
      for (const body of [
        { source: `s3://${arch}/${key}`, out: `s3://${arch}/out/` },
        { source: `s3://${arch}/in/`, out: `s3://${arch}/${key}` },
      ]) {
        const r = await api.call('POST', '/v1/batches', { body });
        expect({ body, status: r.status, code: r.body.error?.code }).toEqual({ body, status: 400, code: 'INVALID_S3_URL' });
      }
    }
    await expectNothingDone();
  });

  it('a source, an out or a manifest default bucket outside the list → 403 BUCKET_NOT_ALLOWED', async () => {
    for (const body of [
      { source: `s3://${foreign}/in/`, out: `s3://${arch}/out/` },
      { source: `s3://${arch}/in/`, out: `s3://${bad}/out/` },
      { manifest: { text: 'in/cli-one.wav\n', format: 'csv', defaultBucket: foreign }, out: `s3://${arch}/out/` },
    ]) {
      const r = await api.call('POST', '/v1/batches', { body });
      expect({ body, status: r.status, code: r.body.error?.code }).toEqual({ body, status: 403, code: 'BUCKET_NOT_ALLOWED' });
    }
    await expectNothingDone();
  });

  it('a manifest with one line in a foreign bucket is refused whole (403 BUCKET_NOT_ALLOWED naming the line); nothing enqueued or read', async () => {
    const text = [
      JSON.stringify({ source: `s3://${arch}/in/cli-one.wav` }),
      JSON.stringify({ source: `s3://${foreign}/in/cli-one.wav` }),
      JSON.stringify({ key: 'in/cli-one.wav', options: { note: 'bare key, default bucket' } }),
    ].join('\n');
    const r = await api.call('POST', '/v1/batches', { body: { manifest: { text, format: 'jsonl', defaultBucket: arch }, out: `s3://${arch}/out/` } });
    expect(r.status).toBe(403);
    expect(r.body).toEqual({ error: { code: 'BUCKET_NOT_ALLOWED', message: expect.stringMatching(new RegExp(`^manifest line 2: bucket ${foreign} is not in S3_ALLOWED_BUCKETS`)), details: { line: 2 } } });
    const csv = await api.call('POST', '/v1/batches', { body: { manifest: { text: `in/cli-one.wav\ns3://${foreign}/in/cli-one.wav\n`, format: 'csv', defaultBucket: arch }, out: `s3://${arch}/out/` } });
    expect(csv).toMatchObject({ status: 403, body: { error: { code: 'BUCKET_NOT_ALLOWED', message: expect.stringContaining('manifest line 2') } } });
    await expectNothingDone();
  });

  it('a manifest line whose key climbs out of its bucket → 400 INVALID_S3_URL (bare keys and URLs)', async () => {
    for (const [text, format] of [
      [`in/cli-one.wav\n../${foreign}/in/cli-one.wav\n`, 'csv'],
      [`${JSON.stringify({ key: `in/../../${foreign}/in/cli-one.wav` })}\n`, 'jsonl'],
      [`${JSON.stringify({ source: `s3://${arch}/../${foreign}/in/cli-one.wav` })}\n`, 'jsonl'],
      [`${JSON.stringify({ key: 'in//cli-one.wav' })}\n`, 'jsonl'],
      [`${JSON.stringify({ key: 'in\\cli-one.wav' })}\n`, 'jsonl'],
    ] as const) {
      const r = await api.call('POST', '/v1/batches', { body: { manifest: { text, format, defaultBucket: arch }, out: `s3://${arch}/out/` } });
      // A URL that does not parse is a bad line of the manifest (INVALID_MANIFEST naming it); a bare
      // key is checked per entry (INVALID_S3_URL). Either way: 400, the whole manifest refused.
      expect({ text, status: r.status, code: r.body.error?.code }).toEqual({ text, status: 400, code: expect.stringMatching(/^(INVALID_S3_URL|INVALID_MANIFEST)$/) });
      expect(JSON.stringify(r.body.error)).toMatch(/dot segment|empty path segment|backslash/);
    }
    await expectNothingDone();
  });

  it('control: the same worker transcribes an allowed batch and writes its outputs and report under out', async () => {
    const r = await api.call('POST', '/v1/batches', { body: { manifest: { text: 'in/cli-one.wav\n', format: 'csv', defaultBucket: arch }, out: `s3://${arch}/out/` } });
    expect(r.status).toBe(201);
    const b = await waitBatch(api, r.body.batchId, 90_000, () => worker.discover());
    expect(b).toMatchObject({ status: 'finished', counts: { completed: 1 }, report: `s3://${arch}/out/_reports/${r.body.batchId}.jsonl` });
    expect(await keysOf(arch, 'out/')).toEqual(expect.arrayContaining(['out/cli-one.wav.json', 'out/cli-one.wav.txt', `out/_reports/${r.body.batchId}.jsonl`]));
    expect(touched(calls, arch).length).toBeGreaterThan(0); // the recorder sees the worker's calls
    expect(touched(calls, foreign)).toEqual([]);
    expect(touched(calls, bad)).toEqual([]);
    expect(await keysOf(bad)).toEqual([]);
  });
});

describe("the worker checks a spec's buckets against its own S3_ALLOWED_BUCKETS before any S3 call", () => {
  const config = testConfig({ S3_ALLOWED_BUCKETS: arch, JOB_ATTEMPTS: '3', BUCKET_DISCOVERY_MS: '200' });
  const calls: string[] = [];
  let redis: Redis;
  let fleet: FleetQueues;
  let worker: RunningWorker;
  let etag: string;

  beforeAll(async () => {
    redis = new Redis(config.REDIS_URL);
    fleet = new FleetQueues(config, redis);
    worker = startWorker(config, createDeps(config, { storage: recorded(calls) }));
    etag = normaliseEtag((await storage.head(foreign, 'in/cli-one.wav'))!.etag);
    expect(normaliseEtag((await storage.head(arch, 'in/cli-one.wav'))!.etag)).toBe(etag); // the same bytes
  });

  afterAll(async () => {
    await worker?.close();
    await fleet?.close();
    redis?.disconnect();
  });

  /** A hand-made spec, as anything with Redis access could plant it (no producer, no validation). */
  const planted = (source: string, out: string, keyBase: string): JobSpec =>
    parseJobSpec({ source: { bucket: source, key: 'in/cli-one.wav', etag }, output: { bucket: out, keyBase, formats: ['json', 'txt'] } });

  async function run(spec: JobSpec): Promise<{ reason: string; attemptsMade: number }> {
    const id = jobIdFor(spec);
    await fleet.add([spec]);
    await worker.discover();
    const [o] = await waitForJobs(fleet, [id], 90_000);
    const job = (await fleet.getJob(id))!;
    return { reason: o!.state === 'failed' ? o!.reason : 'completed', attemptsMade: job.attemptsMade };
  }

  it('a foreign source bucket → failed BUCKET_NOT_ALLOWED in 1 of 3 attempts; the object there is never read', async () => {
    const r = await run(planted(foreign, arch, 'planted/from-foreign'));
    expect(r).toEqual({ reason: expect.stringMatching(new RegExp(`^BUCKET_NOT_ALLOWED: source bucket ${foreign} `)), attemptsMade: 1 });
    expect(touched(calls, foreign)).toEqual([]);
    expect(calls).toEqual([]); // not even the output HEAD in arch
    expect(await keysOf(arch, 'planted/')).toEqual([]);
  });

  it('a foreign output bucket → failed BUCKET_NOT_ALLOWED in 1 attempt; nothing written there', async () => {
    const r = await run(planted(arch, bad, 'planted/to-bad'));
    expect(r).toEqual({ reason: expect.stringMatching(new RegExp(`^BUCKET_NOT_ALLOWED: output bucket ${bad} `)), attemptsMade: 1 });
    expect(calls).toEqual([]);
    expect(await keysOf(bad)).toEqual([]);
  });

  it('an output key base that climbs out of its bucket (../bad/…) → failed INVALID_S3_URL in 1 attempt; nothing written to bad', async () => {
    const r = await run(planted(arch, arch, `../${bad}/planted/x`));
    expect(r).toEqual({ reason: expect.stringMatching(/^INVALID_S3_URL: output key .* dot segment/), attemptsMade: 1 });
    expect(calls).toEqual([]);
    expect(await keysOf(bad)).toEqual([]);
  });

  it('control: the same worker transcribes an allowed planted spec (so the refusals above are the check)', async () => {
    const r = await run(planted(arch, arch, 'planted/ok'));
    expect(r).toEqual({ reason: 'completed', attemptsMade: 1 });
    expect(await keysOf(arch, 'planted/')).toEqual(['planted/ok.json', 'planted/ok.txt']);
    expect(calls).toContain(`get ${arch}`);
    expect(touched(calls, foreign)).toEqual([]);
    expect(touched(calls, bad)).toEqual([]);
  });
});
