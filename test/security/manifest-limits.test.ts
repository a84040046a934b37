/**
 * Manifests are bounded and read as streams: over MANIFEST_MAX_BYTES or MANIFEST_MAX_LINES a manifest
 * is refused with 413 MANIFEST_TOO_LARGE (CLI: exit 2) and nothing is created; one missing object or
 * one bad line among thousands refuses the whole and nothing is enqueued; a good one is enqueued with
 * the objects' ETags and sizes found by listing exactly as HEAD gives them. The real API and compiled
 * CLI, on the test Redis + S3 server. (Timings: bench/manifest.js.)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidManifestError } from '@scribe-fleet/core';
import { lookupObjects } from '@scribe-fleet/core/app/object-lookup';
import { MANIFEST_PAGE } from '@scribe-fleet/core/app/validate';
import type { ObjectInfo } from '@scribe-fleet/core';
import { startApi, type ApiHarness } from '../api/harness';
import { childEnv, uniqueBucket } from '../helpers/env';

jest.setTimeout(180_000);

const CLI = join(__dirname, '..', '..', 'apps', 'producer', 'dist', 'cli.js');
const bucket = uniqueBucket('mlim');
const PER_PREFIX = 1000;
const keys = ['in/a/', 'in/b/'].flatMap((p) => Array.from({ length: PER_PREFIX }, (_, i) => `${p}${String(i).padStart(5, '0')}.wav`));
const LIMITS = { MANIFEST_MAX_BYTES: '200000', MANIFEST_MAX_LINES: '3000', API_CREATE_WAIT_MS: '60000' };
let api: ApiHarness;

const line = (key: string) => JSON.stringify({ source: `s3://${bucket}/${key}` });
const out = () => `s3://${bucket}/out-${Math.random().toString(36).slice(2, 8)}/`;

async function batchCount(): Promise<number> {
  const r = await api.call('GET', '/v1/batches?limit=1');
  expect(r.status).toBe(200);
  return r.body.total as number;
}

async function waitingJobs(): Promise<number> {
  const queues = await api.fleet.allQueues();
  return (await Promise.all(queues.map((q) => q.getJobCountByTypes('waiting', 'delayed', 'prioritized', 'active', 'completed', 'failed')))).reduce((a, b) => a + b, 0);
}

beforeAll(async () => {
  api = await startApi(LIMITS);
  await api.storage.ensureBucket(bucket);
  for (let i = 0; i < keys.length; i += 100) {
    await Promise.all(keys.slice(i, i + 100).map((k) => api.storage.put(bucket, k, Buffer.from(`audio of ${k}`))));
  }
});

afterAll(async () => {
  await api?.close();
});

describe('over the limits: 413 MANIFEST_TOO_LARGE, nothing created', () => {
  it('over MANIFEST_MAX_BYTES', async () => {
    const before = await batchCount();
    // 2 000 real lines, then padding comments past 200 000 bytes (but under 3 000 lines).
    const text = [...keys.map(line), ...Array.from({ length: 500 }, () => `# ${'x'.repeat(200)}`)].join('\n');
    expect(Buffer.byteLength(text)).toBeGreaterThan(200_000);
    const r = await api.call('POST', '/v1/batches', { body: { manifest: { text, format: 'jsonl' }, out: out() } });
    expect(r.status).toBe(413);
    expect(r.body.error).toMatchObject({ code: 'MANIFEST_TOO_LARGE', details: { limit: 'MANIFEST_MAX_BYTES', max: 200_000 } });
    expect(r.body.error.message).toMatch(/MANIFEST_MAX_BYTES/);
    expect(await batchCount()).toBe(before);
    expect(await waitingJobs()).toBe(0);
  });

  it('over MANIFEST_MAX_LINES (blank and comment lines count)', async () => {
    const before = await batchCount();
    const text = [...keys.map(line), ...Array.from({ length: 1001 }, () => '#')].join('\n');
    expect(Buffer.byteLength(text)).toBeLessThan(200_000);
    const r = await api.call('POST', '/v1/batches', { body: { manifest: { text, format: 'jsonl' }, out: out() } });
    expect(r.status).toBe(413);
    expect(r.body.error).toMatchObject({ code: 'MANIFEST_TOO_LARGE', details: { limit: 'MANIFEST_MAX_LINES', max: 3000 } });
    expect(await batchCount()).toBe(before);
    expect(await waitingJobs()).toBe(0);
  });

  it('the CLI refuses an over-large file unread (exit 2, MANIFEST_TOO_LARGE)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scribe-mlim-'));
    const file = join(dir, 'big.jsonl');
    writeFileSync(file, keys.map(line).join('\n'));
    const before = await batchCount();
    const res = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'enqueue', '--manifest', file, '--out', out(), '--json'], {
        env: childEnv(api.config, { MANIFEST_MAX_BYTES: '1000' }),
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.once('exit', (code) => resolve({ code, stdout }));
    });
    expect(res.code).toBe(2);
    expect(JSON.parse(res.stdout).error).toMatchObject({ code: 'MANIFEST_TOO_LARGE', details: { limit: 'MANIFEST_MAX_BYTES' } });
    expect(await batchCount()).toBe(before);
  });
});

describe('one bad entry among thousands refuses the whole', () => {
  it('one missing object: 400 INVALID_MANIFEST naming its line, nothing enqueued', async () => {
    const before = await batchCount();
    const lines = keys.map(line);
    lines[1234] = line('in/b/00234-missing.wav');
    const r = await api.call('POST', '/v1/batches', { body: { manifest: { text: lines.join('\n'), format: 'jsonl' }, out: out() } });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('INVALID_MANIFEST');
    expect(r.body.error.details.errors).toEqual([{ line: 1235, message: `object s3://${bucket}/in/b/00234-missing.wav not found` }]);
    expect(r.body.error.message).toMatch(/nothing enqueued: 1 bad line\(s\): line 1235:/);
    expect(await batchCount()).toBe(before);
    expect(await waitingJobs()).toBe(0);
  });

  it('one bad line: 400 INVALID_MANIFEST naming it, nothing enqueued', async () => {
    const before = await batchCount();
    const lines = keys.map(line);
    lines[1999] = '{"source": ';
    const r = await api.call('POST', '/v1/batches', { body: { manifest: { text: lines.join('\n'), format: 'jsonl' }, out: out() } });
    expect(r.status).toBe(400);
    expect(r.body.error.details.errors).toEqual([{ line: 2000, message: 'not valid JSON' }]);
    expect(await batchCount()).toBe(before);
    expect(await waitingJobs()).toBe(0);
  });

  it('a manifest that changes between its two reads stops at the change (the batch says why)', async () => {
    let reads = 0;
    const open = async function* () {
      reads++;
      const lines = keys.map(line);
      if (reads > 1) lines[1500] = line('in/a/00001.wav'); // a different file on the second read
      yield Buffer.from(lines.join('\n'));
    };
    const before = await batchCount();
    const err = await api.service.create({ manifest: { open, format: 'jsonl' }, out: out() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidManifestError);
    expect((err as Error).message).toMatch(/changed while it was being read \(line 1501\)/);
    expect(reads).toBe(2);
    expect(await batchCount()).toBe(before + 1);
    const [id] = await api.service.batches.recent(1, 0);
    const { batch } = await api.service.getBatch(id!);
    expect(batch.listError).toMatch(/changed while it was being read/);
    expect(batch.total).toBe(Math.floor(1500 / MANIFEST_PAGE) * MANIFEST_PAGE); // the whole pages before the change (1 000)
  });
});

describe('a good manifest', () => {
  it('listing finds what HEAD finds (ETag, size, version), in far fewer requests', async () => {
    const refs = keys.map((key) => ({ bucket, key }));
    const listed = new Array<ObjectInfo | null>(refs.length);
    const headed = new Array<ObjectInfo | null>(refs.length);
    const auto = await lookupObjects(api.storage, refs, (i, info) => (listed[i] = info), { exact: true });
    const heads = await lookupObjects(api.storage, refs, (i, info) => (headed[i] = info), { strategy: 'head' });
    const identity = (o: ObjectInfo | null) => o && { bucket: o.bucket, key: o.key, etag: o.etag, size: o.size, versionId: o.versionId };
    expect(listed.map(identity)).toEqual(headed.map(identity));
    expect(headed.every((h) => h && /^[0-9a-f]{32}$/.test(h.etag))).toBe(true);
    expect(heads).toEqual({ heads: 2000, listCalls: 0 });
    expect(auto.listCalls).toBeLessThanOrEqual(4);
    expect(auto.heads).toBe(1); // the one probe of the bucket
  });

  it('2 000 lines under two prefixes: 201, every file added once, with the ETag HEAD gives', async () => {
    const before = await waitingJobs();
    const r = await api.call('POST', '/v1/batches', { body: { manifest: { text: keys.map(line).join('\n') + '\n', format: 'jsonl' }, out: out() } });
    expect(r).toMatchObject({ status: 201, body: { listed: 2000, added: 2000, duplicates: 0, skipped: 0 } });
    expect((await waitingJobs()) - before).toBe(2000);
    const page = await api.service.batches.jobsPage(r.body.batchId, 1100, 3);
    expect(page).toHaveLength(3);
    for (const { jobId } of page) {
      const job = await api.fleet.getJob(jobId);
      const spec = job!.data as { source: { bucket: string; key: string; etag: string; size: number } };
      const head = await api.storage.head(spec.source.bucket, spec.source.key);
      expect(spec.source).toMatchObject({ etag: head!.etag, size: head!.size });
    }
  });
});
