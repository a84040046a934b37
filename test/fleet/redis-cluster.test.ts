/**
 * The fleet on a real Redis Cluster: 3 masters, each with a replica (Debian's redis-server,
 * `--cluster-enabled yes`, joined by `redis-cli --cluster create`). The producer (in this process)
 * and two worker processes connect with REDIS_CLUSTER_NODES and a hash-tagged QUEUE_PREFIX, against
 * the strict Deepgram emulator in fixed-service-time mode, which counts what is truly in flight.
 *
 * Shown: a batch runs to completion and every key the fleet wrote is in the prefix's one slot; the
 * fleet cap holds; kill -9 of a worker loses nothing; kill -9 of the master serving the slot (its
 * replica takes over) during a batch loses nothing either. "Nothing lost": every job completed, the
 * batch finished once with every job in its report exactly once, and each job's first completion
 * is the one the batch counted.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '@scribe-fleet/core';
import { openBatchService, type BatchServices } from '@scribe-fleet/core/adapters/bullmq/open-services';
import { poolKey, startDeepgramEmulator, type DeepgramEmulatorHandle } from '@scribe-fleet/emulators';
import { childEnv, testStorage, uniqueBucket } from '../helpers/env';
import { readObject, testConfig, waitForJobs } from '../helpers/fleet';
import { startWorkerProcess, type WorkerProcess } from '../helpers/processes';
import { keySlot, RedisClusterUnderTest } from '../helpers/redis-cluster';

jest.setTimeout(300_000);

const KEY = 'dg-cluster-key';
const CAP = 4;
const PRERECORDED = poolKey('project-1', 'prerecorded');
const storage = testStorage();
const bucket = uniqueBucket('cluster');
const PREFIX = `{sf${randomBytes(3).toString('hex')}}`;
let cluster: RedisClusterUnderTest;
let emu: DeepgramEmulatorHandle;
let config: Config;
let producer: BatchServices;
let workerEnv: Record<string, string>;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  cluster = await RedisClusterUnderTest.start({ masters: 3, replicas: 1 });
  emu = await startDeepgramEmulator({ keys: { [KEY]: 'project-1' }, serviceTimeMs: { prerecorded: 700 } });
  const env = {
    ...cluster.env,
    QUEUE_PREFIX: PREFIX,
    DEEPGRAM_API_KEY: KEY,
    DEEPGRAM_URL: emu.url,
    SCRIBE_CAPS: `deepgram:*:nova:batch=${CAP}`,
    WORKER_CONCURRENCY: '4',
    LEASE_TTL_MS: '3000',
    WORKER_LOCK_MS: '4000',
    BUCKET_DISCOVERY_MS: '200',
    JOB_BACKOFF_MS: '200',
  };
  config = testConfig(env);
  workerEnv = childEnv(config, { ...env, METRICS_PORT: '0' });
  producer = openBatchService(config, storage, 'producer');
  for (let i = 0; i < 2; i++) workers.push(await startWorkerProcess(workerEnv));
  const dir = mkdtempSync(join(tmpdir(), 'scribe-cluster-'));
  execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=16000', '-t', '0.5', join(dir, 'clip.wav')]);
  await storage.ensureBucket(bucket);
  const clip = readFileSync(join(dir, 'clip.wav'));
  for (const prefix of ['a/', 'b/']) await Promise.all(Array.from({ length: 30 }, (_, i) => storage.put(bucket, `${prefix}${String(i).padStart(3, '0')}.wav`, clip)));
});

afterAll(async () => {
  for (const w of workers) await w.kill9().catch(() => undefined);
  await producer?.close().catch(() => undefined);
  await emu?.close().catch(() => undefined);
  await cluster?.stop();
});

/** Until `pred` holds, bounded by progress: gives up when `progress()` has not changed for `idleMs`. */
async function until(what: string, pred: () => Promise<boolean> | boolean, progress: () => Promise<unknown> | unknown, idleMs = 60_000): Promise<void> {
  let seen = JSON.stringify(await progress());
  let changedAt = Date.now();
  while (!(await pred())) {
    const now = JSON.stringify(await progress());
    if (now !== seen) (seen = now), (changedAt = Date.now());
    else if (Date.now() - changedAt > idleMs) throw new Error(`no progress for ${idleMs} ms waiting for ${what} (last: ${now})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Run one 30-file batch with `fault` started once its sessions are in flight; checks that nothing is lost. */
async function batchThrough(prefix: string, fault: () => Promise<void>) {
  const out = `s3://${bucket}/out/${prefix}`;
  const created = await producer.service.create({ source: `s3://${bucket}/${prefix}`, out, provider: 'deepgram', model: 'nova-3' }, { returnIdsUpTo: 100 });
  const jobIds = created.jobIds ?? [];
  expect(jobIds).toHaveLength(30);
  await until('sessions in flight', () => emu.concurrency.inFlight(PRERECORDED) > 0, () => emu.concurrency.sessions(PRERECORDED));
  await fault();
  const outcomes = await waitForJobs(producer.fleet, jobIds, 60_000);
  expect(outcomes.filter((o) => o.state !== 'completed')).toEqual([]);
  const batchState = async () => (await producer.service.getBatch(created.batchId)).batch;
  await until('the batch to finish', async () => (await batchState()).finishedAt !== undefined, batchState);
  const batch = await batchState();
  expect({ status: batch.status, total: batch.total, completed: batch.counts.completed, failed: batch.counts.failed }).toEqual({ status: 'finished', total: 30, completed: 30, failed: 0 });
  // Every job in the report exactly once, completed, with its outputs.
  const report = (await readObject(storage, bucket, batch.report!.replace(`s3://${bucket}/`, ''))).toString('utf8');
  const lines = report.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { job_id: string; status: string; outputs: Record<string, string> | null });
  expect(lines.map((l) => l.job_id).sort()).toEqual([...jobIds].sort());
  expect(lines.filter((l) => l.status !== 'completed' || !l.outputs)).toEqual([]);
  return { jobIds };
}

it('refuses a cluster config whose QUEUE_PREFIX has no hash tag, naming the variable', () => {
  expect(() => loadConfig({ ...cluster.env, QUEUE_PREFIX: 'scribe' })).toThrow(/QUEUE_PREFIX: with REDIS_CLUSTER_NODES it must begin with a hash tag/);
  expect(() => loadConfig({ ...cluster.env, QUEUE_PREFIX: '{}scribe' })).toThrow(/QUEUE_PREFIX/);
  expect(loadConfig({ ...cluster.env, QUEUE_PREFIX: '{scribe}' }).REDIS_CLUSTER_NODES).toHaveLength(5);
});

it('a batch runs to completion with kill -9 of a worker in the middle: caps hold, nothing lost, every key in the one slot', async () => {
  await batchThrough('a/', async () => {
    await workers[0]!.kill9();
    workers[0] = await startWorkerProcess(workerEnv);
  });
  expect(emu.concurrency.maxConcurrent(PRERECORDED)).toBeLessThanOrEqual(CAP);
  expect(emu.concurrency.maxConcurrent(PRERECORDED)).toBeGreaterThan(1);
  // The fleet's keys (BullMQ's, the limiter's, the batches') all hash to the prefix's slot: one master
  // holds them all, the other two none.
  const slot = keySlot(`${PREFIX}:anything`);
  const owner = await cluster.masterOf(slot);
  const perMaster = await cluster.keysPerMaster();
  expect(perMaster.get(owner!)).toBeGreaterThan(30);
  expect([...perMaster].filter(([port, n]) => port !== owner && n > 0)).toEqual([]);
});

it('kill -9 of the master serving the slot during a batch: its replica takes over, the batch completes, caps hold', async () => {
  const slot = keySlot(`${PREFIX}:anything`);
  let failover: { from: number; to: number; ms: number } | undefined;
  const before = emu.concurrency.sessions(PRERECORDED);
  await batchThrough('b/', async () => {
    failover = await cluster.failover(slot);
  });
  console.log(`[cluster] failover ${failover!.from} → ${failover!.to} in ${failover!.ms} ms; sessions ${emu.concurrency.sessions(PRERECORDED) - before} for 30 jobs; max in flight ${emu.concurrency.maxConcurrent(PRERECORDED)} (cap ${CAP})`);
  expect(failover!.to).not.toBe(failover!.from);
  expect(emu.concurrency.maxConcurrent(PRERECORDED)).toBeLessThanOrEqual(CAP);
  for (const w of workers) expect({ pid: w.pid, exited: w.child.exitCode ?? w.child.signalCode }).toEqual({ pid: w.pid, exited: null });
});
