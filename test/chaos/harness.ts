/**
 * The chaos world: real processes only. A private Redis (AOF, everysec) and S3 server of its own
 * (so a scenario may kill them), a PUT-counting proxy in front of the S3 server, worker OS
 * processes, a provider emulator, and a webhook receiver. Every scenario ends with `audit`, which
 * checks the promise: every job terminal exactly once in the books, the batch finished with a report
 * listing every file exactly once, each output key written by exactly one successful PUT, the
 * provider's in-flight maximum within the cap, nothing left active or stalled, no cap lease left,
 * and no webhook event delivered under two ids.
 *
 * Counts: `CHAOS_FULL=1` (npm run chaos) runs the issue's full counts; otherwise (CI) smaller ones.
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo, Socket } from 'node:net';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '@scribe-fleet/core';
import type { BatchService, CreateBatchRequest } from '@scribe-fleet/core/app/batch-service';
import { batchServiceOver, type BatchServices } from '@scribe-fleet/core/adapters/bullmq/open-services';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { S3Storage } from '@scribe-fleet/core/adapters/s3/s3-storage';
import { limiterFromConfig } from '@scribe-fleet/core/adapters/redis/redis-limiter';
import { startRedis, startS3, type RedisServer, type S3Server } from '../../infra/local/src/services';
import { startWorkerProcess, type WorkerProcess } from '../helpers/processes';

export const FULL = process.env.CHAOS_FULL === '1';
/** The issue's count in `npm run chaos`, a smaller one in CI. */
export const count = (full: number, ci: number) => (FULL ? full : ci);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One successful write of an object key through the proxy: by which attempt, from which client address, when. */
export interface ProxiedWrite {
  key: string;
  attempt: string;
  /** The client's address (`10.231.0.11`): which host of the fleet wrote it. */
  from: string;
  at: number;
}

/** A proxy in front of the S3 server that counts successful PUTs per object key; it resets connections while the server is down. */
class PutCountingProxy {
  /** Successful writes per object key: the `scribe-attempt` of each (or '' for writes without one). */
  readonly puts = new Map<string, string[]>();
  /** Every successful write, in order. */
  readonly writes: ProxiedWrite[] = [];
  private server!: Server;
  private readonly sockets = new Set<Socket>();
  port = 0;
  constructor(
    private readonly upstreamPort: () => number,
    /** The address it listens on and reaches the S3 server at. */
    readonly host = '127.0.0.1',
  ) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const from = req.socket.remoteAddress ?? '';
      const up = request({ host: this.host, port: this.upstreamPort(), method: req.method, path: req.url, headers: req.headers }, (ur: IncomingMessage) => {
        if (req.method === 'PUT' && (ur.statusCode ?? 500) < 300 && !/[?&](uploadId|partNumber)=/.test(req.url ?? '')) this.count(req.url ?? '', String(req.headers['x-amz-meta-scribe-attempt'] ?? ''), from);
        // A completed multipart upload is one successful write of its key.
        if (req.method === 'POST' && /[?&]uploadId=/.test(req.url ?? '') && (ur.statusCode ?? 500) < 300) this.count(req.url ?? '', '', from);
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => req.socket.destroy()); // S3 down: the client sees a reset connection
      req.pipe(up);
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((r) => this.server.listen(0, this.host, r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  private count(url: string, attempt: string, from: string): void {
    const path = decodeURIComponent(url.split('?')[0]!.replace(/^\//, ''));
    this.puts.set(path, [...(this.puts.get(path) ?? []), attempt]);
    this.writes.push({ key: path, attempt, from, at: Date.now() });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

/** Receives webhooks and remembers the delivery ids of each (event, job or batch). */
class WebhookReceiver {
  readonly deliveries = new Map<string, Set<string>>();
  private server!: Server;
  url = '';
  constructor(private readonly host = '127.0.0.1') {}
  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => (body += d));
      req.on('end', () => {
        try {
          const b = JSON.parse(body) as { event: string; data: { jobId?: string; batchId?: string } };
          const k = `${b.event}|${b.data.jobId ?? b.data.batchId ?? ''}`;
          const ids = this.deliveries.get(k) ?? new Set<string>();
          ids.add(String(req.headers['x-scribe-delivery']));
          this.deliveries.set(k, ids);
        } catch {
          // not ours
        }
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => this.server.listen(0, this.host, r));
    this.url = `http://${this.host}:${(this.server.address() as AddressInfo).port}/hooks`;
  }
  /** Events delivered under more than one delivery id (receivers could not deduplicate them). */
  duplicates(): string[] {
    return [...this.deliveries].filter(([, ids]) => ids.size > 1).map(([k]) => k);
  }
  close(): Promise<unknown> {
    return new Promise((r) => this.server.close(r));
  }
}

export interface WorldOptions {
  workers: number;
  /** Worker environment beyond the world's own (provider URLs, keys, caps, timings). */
  env: Record<string, string>;
  /**
   * The address every server of the world listens on (Redis, S3, the proxy, the webhook receiver):
   * default 127.0.0.1; a bridge address when the workers run in network namespaces.
   */
  host?: string;
}

export class ChaosWorld {
  readonly dir = mkdtempSync(join(tmpdir(), 'scribe-chaos-'));
  redisServer!: RedisServer;
  s3Server!: S3Server;
  readonly proxy: PutCountingProxy;
  readonly hooks: WebhookReceiver;
  config!: Config;
  storage!: S3Storage;
  redis!: Redis;
  fleet!: FleetQueues;
  services!: BatchServices;
  service!: BatchService;
  workers: WorkerProcess[] = [];
  workerEnv: Record<string, string> = {};
  readonly bucket = 'chaos';
  /** Faults injected, by kind (for the report). */
  readonly injected: Record<string, number> = {};
  private lastFaultAt = 0;

  private constructor(readonly host: string) {
    this.proxy = new PutCountingProxy(() => this.s3Server.port, host);
    this.hooks = new WebhookReceiver(host);
  }

  static async start(opts: WorldOptions): Promise<ChaosWorld> {
    const w = new ChaosWorld(opts.host ?? '127.0.0.1');
    await w.boot(opts);
    return w;
  }

  private async boot(opts: WorldOptions): Promise<void> {
    this.redisServer = await startRedis({ dir: join(this.dir, 'redis'), host: this.host });
    this.s3Server = await startS3({ dir: join(this.dir, 's3'), buckets: [this.bucket], host: this.host });
    await this.proxy.start();
    await this.hooks.start();
    const endpoint = `http://${this.host}:${this.proxy.port}`;
    const base: Record<string, string> = {
      REDIS_URL: this.redisServer.url,
      S3_ENDPOINT: endpoint,
      S3_ACCESS_KEY_ID: this.s3Server.accessKeyId,
      S3_SECRET_ACCESS_KEY: this.s3Server.secretAccessKey,
      S3_REGION: 'us-east-1',
      QUEUE_NAME: 'chaos',
      BUCKET_DISCOVERY_MS: '300',
      JOB_BACKOFF_MS: '300',
      WORKER_LOCK_MS: '4000',
      LEASE_TTL_MS: '3000',
      RECONCILE_INTERVAL_MS: '2000',
      WEBHOOK_SECRET: 'chaos-webhook-secret-0123456789',
      WEBHOOK_URL: this.hooks.url,
      WEBHOOK_BACKOFF_MS: '200',
      METRICS_PORT: '0',
      ...opts.env,
    };
    this.workerEnv = base;
    this.config = loadConfig(base);
    this.storage = new S3Storage({ region: 'us-east-1', forcePathStyle: true, endpoint, accessKeyId: this.s3Server.accessKeyId, secretAccessKey: this.s3Server.secretAccessKey });
    this.redis = new Redis(this.config.REDIS_URL, { maxRetriesPerRequest: null });
    this.redis.on('error', () => {});
    this.fleet = new FleetQueues(this.config, this.redis, 'worker');
    this.services = batchServiceOver({ config: this.config, redis: this.redis, storage: this.storage, fleet: this.fleet });
    this.service = this.services.service;
    // Outages are the point here: the test's own queue handles reconnect quietly.
    this.services.controlQueues.onError(() => {});
    for (let i = 0; i < opts.workers; i++) this.workers.push(await startWorkerProcess(this.workerEnv));
  }

  /** Count `n` faults of `kind`, the last of them at `at` (default now). */
  fault(kind: string, n = 1, at = Date.now()): void {
    this.injected[kind] = (this.injected[kind] ?? 0) + n;
    this.lastFaultAt = at;
  }

  /** Forget the faults injected so far (a scenario of several phases reports each on its own). */
  resetFaults(): void {
    for (const k of Object.keys(this.injected)) delete this.injected[k];
    this.lastFaultAt = 0;
  }

  /** kill -9 of a random worker, and a new one in its place. */
  async killRandomWorker(): Promise<void> {
    const i = Math.floor(Math.random() * this.workers.length);
    await this.workers[i]!.kill9();
    this.fault('kill -9 worker');
    this.workers[i] = await startWorkerProcess(this.workerEnv);
  }

  /**
   * SIGTERM of a random worker (it hands its streams back), and a new one in its place. Resolves with
   * the stopped worker's exit code and the milliseconds it took to exit.
   */
  async stopRandomWorker(): Promise<{ code: number | null; ms: number; output: string }> {
    const i = Math.floor(Math.random() * this.workers.length);
    const started = Date.now();
    const w = this.workers[i]!;
    const code = await w.stop();
    const ms = Date.now() - started;
    this.fault('SIGTERM worker');
    this.workers[i] = await startWorkerProcess(this.workerEnv);
    return { code, ms, output: w.output() };
  }

  /** Start `n` more worker processes (a scenario that enqueues before any worker runs starts with none). */
  async addWorkers(n: number): Promise<void> {
    for (let i = 0; i < n; i++) this.workers.push(await startWorkerProcess(this.workerEnv));
  }

  /** One more worker process with `env` over the world's, started through `prefix` (e.g. `ip netns exec <ns>`). */
  async addWorker(opts: { env?: Record<string, string>; prefix?: string[] } = {}): Promise<WorkerProcess> {
    const w = await startWorkerProcess({ ...this.workerEnv, ...opts.env }, opts.prefix ? { prefix: opts.prefix } : {});
    this.workers.push(w);
    return w;
  }

  /** Workers that exited by themselves (a crash): the chaos scenarios only ever kill them on purpose. */
  crashedWorkers(): string[] {
    return this.workers.filter((w) => w.child.exitCode !== null || w.child.signalCode !== null).map((w) => `pid ${w.pid} exited ${w.child.exitCode ?? w.child.signalCode}:\n${w.output().slice(-2000)}`);
  }

  /** kill -9 of Redis, restarted on the same port and AOF dir after `downMs`. */
  async redisOutage(downMs: number): Promise<void> {
    await this.redisServer.kill();
    this.fault('Redis kill -9');
    await sleep(downMs);
    await this.redisServer.restart();
    this.lastFaultAt = Date.now();
  }

  /** The S3 server stopped for `downMs` (kill -9, restarted on its data dir). */
  async s3Outage(downMs: number): Promise<void> {
    await this.s3Server.kill();
    this.fault('S3 server down');
    await sleep(downMs);
    await this.s3Server.restart();
    this.lastFaultAt = Date.now();
  }

  async upload(prefix: string, files: Array<{ name: string; body: Buffer }>): Promise<void> {
    for (let i = 0; i < files.length; i += 25) await Promise.all(files.slice(i, i + 25).map((f) => this.storage.put(this.bucket, `${prefix}${f.name}`, f.body)));
  }

  async enqueue(req: Omit<CreateBatchRequest, 'out'> & { out?: string }): Promise<{ batchId: string; jobIds: string[] }> {
    const r = await this.service.create({ out: `s3://${this.bucket}/out/`, ...req }, { returnIdsUpTo: 1_000_000 });
    return { batchId: r.batchId, jobIds: r.jobIds ?? [] };
  }

  /**
   * Wait for the batch to finish, bounded by progress: it fails only when nothing changed (jobs
   * done, jobs active, and the scenario's own `progress` probe, e.g. audio reaching the provider)
   * for `idleMs`, however long the whole takes. Redis errors (an outage the scenario is running)
   * count as no change.
   */
  async waitForBatch(batchId: string, opts: { idleMs?: number; progress?: () => unknown } = {}): Promise<{ finishedAt: number }> {
    const idleMs = opts.idleMs ?? 120_000;
    let last = '';
    let changedAt = Date.now();
    for (;;) {
      try {
        const { batch } = await this.service.getBatch(batchId);
        if (batch.finishedAt) return { finishedAt: Date.now() };
        const sig = JSON.stringify([batch.counts, opts.progress?.()]);
        if (sig !== last) {
          last = sig;
          changedAt = Date.now();
        }
      } catch {
        // Redis away (the scenario's outage): no progress seen
      }
      if (Date.now() - changedAt > idleMs) throw new Error(`batch ${batchId} made no progress for ${idleMs} ms (counts ${last})`);
      await sleep(250);
    }
  }

  /** The checks every scenario ends with; returns the figures for RELIABILITY.md. */
  async audit(batchId: string, opts: { cap?: number; maxInFlight?: number; finishedAt: number; startedAt: number; expectOutputs?: boolean }): Promise<ChaosFigures> {
    const { batch } = await this.service.getBatch(batchId);
    const problems: string[] = [];
    if (batch.status !== 'finished' && batch.status !== 'cancelled') problems.push(`batch status ${batch.status}`);
    const done = batch.counts.completed + batch.counts.failed + batch.counts.cancelled + batch.counts.skipped;
    if (done !== batch.total || batch.counts.queued + batch.counts.active > 0) problems.push(`books: ${JSON.stringify(batch.counts)} of ${batch.total}`);
    // The report lists every file exactly once.
    const report = batch.report ? await this.readText(batch.report.replace(`s3://${this.bucket}/`, '')) : '';
    const lines = report.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { job_id: string; key: string; status: string; error_code: string | null; outputs: Record<string, string> | null });
    const ids = new Set(lines.map((l) => l.job_id));
    if (lines.length !== batch.total || ids.size !== batch.total) problems.push(`report has ${lines.length} lines, ${ids.size} distinct jobs, batch total ${batch.total}`);
    // Each output key written by exactly one successful attempt: the successful attempts of a job
    // are those that wrote its JSON (written last); exactly one may, and it wrote every output. (An
    // attempt killed between two PUTs wrote a part only; the next one writes the set again.)
    let duplicateWrites = 0;
    for (const l of lines) {
      if (l.status !== 'completed' || !l.outputs || !l.outputs.json) continue;
      const winners = new Set(this.proxy.puts.get(`${this.bucket}/${l.outputs.json}`) ?? []);
      if (winners.size !== 1 && !(opts.expectOutputs === false)) {
        duplicateWrites += Math.max(0, winners.size - 1);
        problems.push(`${l.outputs.json} written by ${winners.size} successful attempts`);
      }
      const [winner] = winners;
      for (const key of Object.values(l.outputs)) {
        if (winner !== undefined && !(this.proxy.puts.get(`${this.bucket}/${key}`) ?? []).includes(winner)) problems.push(`${key} not written by the attempt that completed the job`);
      }
    }
    // Nothing active or stalled, no cap lease left, once the fleet has settled. A Redis kill -9 can
    // lose the last second of its AOF: a job whose end reached the books but whose BullMQ completion
    // did not is back in \`active\` with an expired lock when Redis restarts, and its batch can finish at
    // once. The stalled check returns such a job to the queue within two passes after the restart
    // grace, and its re-run returns the outputs already written (no second write, no second end).
    // Waited for here, bounded: the stalled passes (every WORKER_LOCK_MS, 4 s) have 30 s to do it.
    const activeAndStalled = async () => {
      let active = 0;
      let stalled = 0;
      for (const q of await this.fleet.allQueues()) {
        active += await q.getActiveCount();
        stalled += await this.redis.scard(q.toKey('stalled'));
      }
      return { active, stalled };
    };
    const busy = async () => {
      const { active, stalled } = await activeAndStalled();
      return active + stalled;
    };
    const settleFrom = Date.now();
    const busyAtEnd = await busy();
    for (const until = Date.now() + 30_000; (await busy()) > 0 && Date.now() < until; ) await sleep(250);
    if (busyAtEnd) console.log(`[chaos] ${busyAtEnd} active/stalled entries when the batch finished; settled after ${Date.now() - settleFrom} ms`);
    const { active, stalled } = await activeAndStalled();
    let attempts = 0;
    const jobs = [];
    const activeJobs: string[] = [];
    for (const q of await this.fleet.allQueues()) {
      // What each job still active is (so a failure says which, and in what shape).
      for (const j of await q.getActive()) {
        const lockTtl = await this.redis.pttl(q.toKey(`${j.id}:lock`));
        activeJobs.push(`${j.id} attemptsMade=${j.attemptsMade} stalled=${j.stalledCounter ?? 0} processedOn=${j.processedOn ?? '-'} finishedOn=${j.finishedOn ?? '-'} lockTtlMs=${lockTtl} inStalledSet=${await this.redis.sismember(q.toKey('stalled'), j.id!)} returnvalue=${j.returnvalue ? 'yes' : 'no'}`);
      }
      for (const l of lines) {
        const j = await q.getJob(l.job_id);
        if (j) jobs.push(j);
      }
    }
    for (const j of jobs) attempts += j.attemptsMade + (j.stalledCounter ?? 0);
    if (active) problems.push(`${active} jobs still active${activeJobs.length ? `: ${activeJobs.join('; ')} (audit at ${Date.now()})` : ''}`);
    for (const c of this.crashedWorkers()) problems.push(`a worker crashed: ${c}`);
    if (stalled) problems.push(`${stalled} jobs in a stalled set`);
    const limiter = limiterFromConfig(this.config);
    let leases = 0;
    for (const b of await this.fleet.buckets()) leases += (await limiter.snapshot(`${b.provider}:${b.account}:${b.modelClass}:${b.mode}`)).inFlight;
    await limiter.close();
    if (leases) problems.push(`${leases} cap leases left`);
    if (opts.cap !== undefined && opts.maxInFlight !== undefined && opts.maxInFlight > opts.cap) problems.push(`provider saw ${opts.maxInFlight} in flight, cap ${opts.cap}`);
    // Webhooks: wait for the batch event (deliveries retry), then no event under two ids.
    const until = Date.now() + 30_000;
    while (!this.hooks.deliveries.has(`batch.completed|${batchId}`) && Date.now() < until) await sleep(200);
    if (!this.hooks.deliveries.has(`batch.completed|${batchId}`)) problems.push('no batch.completed webhook');
    const dupHooks = this.hooks.duplicates();
    if (dupHooks.length) problems.push(`webhook events under two delivery ids: ${dupHooks.slice(0, 5).join(', ')}`);
    const failedByCode: Record<string, number> = {};
    for (const l of lines) if (l.status === 'failed') failedByCode[l.error_code ?? '?'] = (failedByCode[l.error_code ?? '?'] ?? 0) + 1;
    return {
      jobs: batch.total,
      faults: { ...this.injected },
      completed: batch.counts.completed,
      failedByCode,
      lost: batch.total - ids.size,
      booksWrong: problems.filter((p) => p.startsWith('books') || p.startsWith('report')).length,
      batchesHung: batch.finishedAt ? 0 : 1,
      duplicateOutputWrites: duplicateWrites,
      duplicateWebhooks: dupHooks.length,
      overshoot: opts.cap !== undefined && opts.maxInFlight !== undefined ? Math.max(0, opts.maxInFlight - opts.cap) : 0,
      attemptsSpent: attempts,
      secondsFromLastFaultToEnd: this.lastFaultAt ? Math.max(0, (opts.finishedAt - this.lastFaultAt) / 1000) : 0,
      seconds: (opts.finishedAt - opts.startedAt) / 1000,
      problems,
    };
  }

  async readText(key: string): Promise<string> {
    const { body } = await this.storage.get(this.bucket, key);
    const parts: Buffer[] = [];
    for await (const c of body) parts.push(c as Buffer);
    return Buffer.concat(parts).toString('utf8');
  }

  async close(): Promise<void> {
    for (const w of this.workers) await w.kill9().catch(() => undefined);
    await this.services.close().catch(() => undefined);
    await this.fleet.close().catch(() => undefined);
    this.redis.disconnect();
    await this.proxy.close().catch(() => undefined);
    await this.hooks.close().catch(() => undefined);
    await this.redisServer.stop().catch(() => undefined);
    await this.s3Server.stop().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Inject `fault` up to `times` times, the next one `everyMs` + up to `jitterMs` after the previous,
 * until `stop()`; `stop()` resolves with what each injection returned (once the one under way ended).
 */
export function repeatFault<T>(fault: () => Promise<T>, o: { times: number; everyMs: number; jitterMs: number; firstAfterMs?: number }): { stop(): Promise<T[]> } {
  const results: T[] = [];
  let done = false;
  const loop = (async () => {
    while (!done && results.length < o.times) {
      await sleep(results.length === 0 && o.firstAfterMs !== undefined ? o.firstAfterMs : o.everyMs + Math.random() * o.jitterMs);
      if (done) break;
      results.push(await fault());
    }
  })();
  return {
    async stop() {
      done = true;
      await loop;
      return results;
    },
  };
}

export interface ChaosFigures {
  jobs: number;
  faults: Record<string, number>;
  completed: number;
  failedByCode: Record<string, number>;
  lost: number;
  booksWrong: number;
  batchesHung: number;
  duplicateOutputWrites: number;
  duplicateWebhooks: number;
  overshoot: number;
  attemptsSpent: number;
  secondsFromLastFaultToEnd: number;
  seconds: number;
  problems: string[];
  /** Scenario-specific figures (resumed sessions, exit times...), for the report's notes column. */
  notes?: Record<string, number | string>;
}

/** Append a scenario's figures to test-output/chaos/<name>.json (RELIABILITY.md is written from these). */
export async function recordFigures(name: string, f: ChaosFigures): Promise<void> {
  const dir = join(__dirname, '..', '..', 'test-output', 'chaos');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${name}.json`), `${JSON.stringify({ name, full: FULL, at: new Date().toISOString(), ...f }, null, 2)}\n`);
}
