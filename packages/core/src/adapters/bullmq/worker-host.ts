import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { decideFailedAttempt, type AttemptProgress, type JobOutcome } from '../../domain/attempt';
import { BucketSlots } from '../../domain/bucket-slots';
import type { CapBucket } from '../../domain/caps';
import type { Config } from '../../domain/config';
import { BudgetPausedError, formatFailedReason, JobCancelledError, toScribeError, WorkerLostError } from '../../domain/errors';
import type { JobResult } from '../../domain/job-result';
import { parseJobSpec, type JobSpec } from '../../domain/job-spec';
import { createProcessor, type ProcessorDeps } from '../../app/process-attempt';
import { openRedis } from '../redis/connection';
import { FleetStats } from '../redis/fleet-stats';
import { RedisUsageBook } from '../redis/usage-book';
import { loadPrices } from '../price-table';
import { attemptIncrement, sessionIncrement } from '../../domain/usage';
import { deliverWebhook } from '../webhooks/http-delivery';
import { traceAttempts, withDecision } from './attempt-span';
import { FleetQueues } from './fleet-queues';
import { queuedJobOf } from './job-queue';
import { JobLocks } from './job-locks';
import { batchServiceOver } from './open-services';

/** Upper bound on "the provider said too many" re-schedules of one job, so nothing waits forever. */
export const MAX_RATE_LIMIT_DELAYS = 200;

/** Abort reasons of a running job that are not a cancel. */
const LOCK_LOST = 'LOCK_LOST';
const HAND_BACK = 'HAND_BACK';
class HandBack extends Error {}

export interface RunningWorker {
  /** One BullMQ Worker per cap-bucket queue this process consumes now (see BucketSlots). */
  readonly workers: Map<string, Worker<JobSpec, JobResult, string>>;
  /**
   * Look at the registered buckets now (also runs every BUCKET_DISCOVERY_MS): consume those with work,
   * within WORKER_MAX_BUCKETS, and give up those idle for WORKER_BUCKET_IDLE_MS.
   */
  discover(): Promise<void>;
  /** One reconciler sweep now (also runs every RECONCILE_INTERVAL_MS). */
  reconcile(): Promise<{ batches: number; recorded: number; finalised: number }>;
  /** One feeder pass now (also runs every FEED_INTERVAL_MS). */
  feed(): Promise<{ batches: number; pages: number; repaired: number; spilled: number }>;
  /** Stop. With `handBack` (SIGTERM), streams and jobs not yet in a session return to the queue at once. */
  close(opts?: { handBack?: boolean }): Promise<void>;
}

export interface WorkerOptions {
  /** Only consume these buckets (default: every registered bucket, discovered as they appear). */
  buckets?: (b: CapBucket) => boolean;
}

/**
 * The BullMQ glue: consumes every cap-bucket queue and maps each ScribeError kind onto BullMQ
 * semantics: unrecoverable → UnrecoverableError (fails now); rate_limit (after the processor's own
 * retries) → back to `delayed` without spending an attempt, at most MAX_RATE_LIMIT_DELAYS times;
 * retry → a plain Error (BullMQ retries with backoff until `attempts` run out).
 * The failed reason is always `CODE: message`.
 *
 * Connections: every BullMQ Worker and Queue of the process shares its one connection (`redis`,
 * which waits out outages); each Worker adds only its own blocking connection. So a process holds
 * 6 + (buckets consumed) connections: `redis`, the cancel subscriber, the limiter's connection and
 * its subscriber, the control and webhook Workers' blocking ones; and BucketSlots keeps the buckets
 * consumed at once within WORKER_MAX_BUCKETS (ARCHITECTURE.md, "Connection budget").
 */
export function startWorker(config: Config, deps: ProcessorDeps, opts: WorkerOptions = {}): RunningWorker {
  const processor = createProcessor(deps);
  const redis = openRedis(config, 'worker');
  const fleet = new FleetQueues(config, redis, 'worker');
  // The price table: a finished batch's summary states its estimated cost (a bad PRICES_FILE stops main.ts first).
  const services = batchServiceOver({ config, redis, storage: deps.storage, fleet, shareConnection: true, prices: loadPrices(config) });
  const { service } = services;
  const workers = new Map<string, Worker<JobSpec, JobResult, string>>();
  /** Workers of buckets given up, finishing their running jobs; a bucket is not reopened before its old Worker closed. */
  const closing = new Map<string, { worker: Worker<JobSpec, JobResult, string>; done: Promise<void> }>();
  const slots = new BucketSlots({ maxBuckets: config.WORKER_MAX_BUCKETS, idleMs: config.WORKER_BUCKET_IDLE_MS, turnMs: config.WORKER_BUCKET_TURN_MS });
  const locks = new JobLocks(redis, config);
  let closed = false;
  let handingBack = false;

  // Every attempt's end goes to the fleet history (dashboard) and this process's metrics; never throws.
  const fleetStats = new FleetStats(redis, config);
  // The usage book (GET /v1/usage): sessions started, attempts ended, jobs' first ends; never throws.
  const usage = new RedisUsageBook(redis, config);
  const ended = async (spec: JobSpec | undefined, o: Omit<JobOutcome, 'bucket'>) => {
    const outcome: JobOutcome = { ...o, bucket: spec ? fleet.bucketOf(spec).key : 'unknown' };
    try {
      deps.onJobEnd?.(outcome);
    } catch {
      // metrics must not fail a job
    }
    await fleetStats.record(outcome).catch(() => undefined);
    if (spec) await usage.add(attemptIncrement(spec, outcome, Date.now())).catch(() => undefined);
  };

  /** Jobs running here: their lock tokens (re-asserted after a Redis outage) and what they are doing. */
  const running = new Map<string, { queueName: string; token: string; mode: string; inSession: boolean; abort: (reason: string) => void }>();

  const handle = async (job: Job<JobSpec, JobResult, string>, token?: string, signal?: AbortSignal) => {
    const ctrl = new AbortController();
    const jobSignal = signal ? AbortSignal.any([signal, ctrl.signal]) : ctrl.signal;
    const id = job.id ?? '';
    // A spec that does not parse fails below (INVALID_JOB_SPEC) without batch bookkeeping.
    let spec: JobSpec | undefined;
    try {
      spec = parseJobSpec(job.data);
    } catch {
      spec = undefined;
    }
    const attempts = job.opts.attempts ?? 1;
    // A stall is a crash of the attempt's worker: it counts as an attempt (BullMQ counts it apart).
    const spent = job.attemptsMade + (job.stalledCounter ?? 0);
    const entry = {
      queueName: job.queueName,
      token: token ?? '',
      mode: spec?.mode ?? 'batch',
      inSession: false,
      /** The job's lock went to another worker: whatever else aborted it, its end is not ours to record. */
      lockLost: false,
      abort: (reason: string) => {
        if (reason === LOCK_LOST) entry.lockLost = true;
        ctrl.abort(new Error(reason));
      },
    };
    if (token) running.set(id, entry);
    /**
     * Whether the job is still this attempt's: its lock renewed, or re-taken while the job is still
     * active. False once the job went to another worker (this one was cut off from Redis, or frozen,
     * for longer than WORKER_LOCK_MS, and the stalled check moved it).
     */
    const owned = async () => !token || !(await locks.reassert([{ id, queueName: job.queueName, token }])).length;
    /** The job is another worker's now: no output, no end recorded here; BullMQ's own move fails on the lock. */
    const dropLost = (): never => {
      console.error(`[worker] job ${id}: its lock went to another worker (this one was cut off from Redis for longer than WORKER_LOCK_MS?); dropped here without an end`);
      throw withDecision(new Error(`${LOCK_LOST}: job ${id} is no longer this worker's`), { outcome: 'retrying', code: LOCK_LOST });
    };
    try {
      if (spent >= attempts) throw new WorkerLostError(`the job's worker was lost ${job.stalledCounter} time(s) and ${job.attemptsMade} attempt(s) failed: ${attempts} attempts allowed`);
      if (handingBack) throw new HandBack();
      const started = spec ? await service.jobStarted(spec, id) : { cancelled: false };
      if (started.cancelled) throw new JobCancelledError('its batch was cancelled');
      // A budget does not admit it: back to the queue before any session, no attempt spent.
      if (started.paused) throw new BudgetPausedError(`not admitted by its ${started.paused.reason}: its batch is paused`, { retryAfterMs: started.paused.retryInMs });
      const result = await processor(job.data, {
        id,
        attempt: spent + 1,
        signal: jobSignal,
        progress: (p) => job.updateProgress(p),
        onSessionStart: () => {
          entry.inSession = true;
          if (spec) void usage.add(sessionIncrement(spec, Date.now())).catch(() => undefined);
        },
        // The commit point: outputs are written only while the job is still ours (its lock renewed,
        // or re-taken while the job is still active); otherwise the attempt writes nothing (LOCK_LOST).
        // (Not owned: the processor throws JobLockLostError, code LOCK_LOST, which the catch below drops.)
        ...(token ? { owned } : {}),
      });
      const first = spec ? (await service.jobEnded(spec, id, job.timestamp, { result })).first : true;
      if (first) await ended(spec, { outcome: 'completed', audioSeconds: result.duration });
      return result;
    } catch (e) {
      const reason = (jobSignal.reason as Error | undefined)?.message;
      // This worker lost the job (its lock went to another worker after an outage): not our end to record.
      if (reason === LOCK_LOST || entry.lockLost || (e as { code?: string } | undefined)?.code === LOCK_LOST) dropLost();
      const err = jobSignal.aborted && reason !== HAND_BACK ? new JobCancelledError('cancelled by request') : toScribeError(e);
      const progress = (typeof job.progress === 'object' && job.progress ? job.progress : {}) as AttemptProgress;
      // The one decision on how this attempt ends (domain/attempt.ts); the span reads it off the error.
      const d = decideFailedAttempt({
        error: err,
        spent,
        attempts,
        progress,
        canReschedule: Boolean(token),
        // Shutting down: the job goes back to the queue at once, without spending an attempt (a stream
        // resumes from its checkpoint on another worker).
        handBack: e instanceof HandBack || reason === HAND_BACK,
        now: Date.now(),
        storageRetryMs: config.STORAGE_RETRY_MS,
        maxRateLimitDelays: MAX_RATE_LIMIT_DELAYS,
      });
      if (d.outcome === 'rescheduled') {
        if (d.reason === 'HANDED_BACK') {
          if (spec) await service.jobHandedBack(spec, id).catch(() => undefined);
        } else if (d.reason === 'BUDGET_PAUSED') {
          // Never started: nothing to record but the wait (it stays queued in its batch's books).
        } else {
          await job.updateProgress({ ...progress, ...d.progress });
          await ended(spec, { outcome: d.reason === 'RATE_LIMITED' ? 'rate_limited' : 'retry', code: err.code });
        }
        await job.moveToDelayed(Date.now() + d.delayMs, token);
        throw withDecision(new DelayedError(), d);
      }
      // A failure is this worker's to record only while the job is its own (a worker back from a
      // network cut must not end a job that runs, or completed, elsewhere).
      if (d.outcome === 'failed' && !(await owned().catch(() => true))) dropLost();
      let first = true;
      if (d.outcome === 'failed' && spec) first = (await service.jobEnded(spec, id, job.timestamp, { error: { code: err.code, message: err.message } }).catch(() => ({ first: true }))).first;
      if (first || d.outcome !== 'failed') await ended(spec, { outcome: d.outcome === 'failed' ? (err.code === 'JOB_CANCELLED' ? 'cancelled' : 'failed') : 'retry', code: err.code });
      if (d.outcome === 'failed') throw withDecision(new UnrecoverableError(formatFailedReason(err)), d);
      throw withDecision(new Error(formatFailedReason(err)), d);
    } finally {
      running.delete(id);
    }
  };

  /** Re-assert the locks of these running jobs; those that went to another worker meanwhile stop here (LOCK_LOST). */
  const keepOrDrop = (ids: string[]) => {
    const jobs = ids.flatMap((id) => {
      const r = running.get(id);
      return r?.token ? [{ id, queueName: r.queueName, token: r.token }] : [];
    });
    if (!jobs.length) return;
    void locks.reassert(jobs).then(
      (lost) => lost.forEach((id) => running.get(id)?.abort(LOCK_LOST)),
      () => undefined,
    );
  };
  // After Redis comes back (a restart loses every lock that expired meanwhile), re-assert the locks
  // of the jobs still running here before any stalled check can hand them to another worker; a job
  // that went to another worker meanwhile is dropped here (LOCK_LOST), so no job runs twice.
  redis.on('ready', () => keepOrDrop([...running.keys()]));
  // The same when a lock could not be renewed without a reconnect (this host's network was cut off,
  // or the process was frozen, for longer than WORKER_LOCK_MS): the job may be running elsewhere
  // by now, so its session here stops early; the commit point (JobContext.owned) is the guarantee.
  const onLockRenewalFailed = (ids: string[]) => keepOrDrop(ids);

  // BullMQ's own failures (the stalled limit, a deferred failure) never reach the handler: record
  // them through the one owner of a job's end. Idempotent, so the handler's own failures may pass too.
  const onFailed = (job: Job<JobSpec, JobResult, string> | undefined) => {
    if (job) void queuedJobOf(job).then((j) => service.recordFinishedJob(j)).catch(() => undefined);
  };

  const startBucket = (bucket: CapBucket) => {
    const resolved = fleet.resolve(bucket);
    const { key } = resolved;
    if (workers.has(key) || closing.has(key) || closed) return;
    // Each attempt is a root span linked to the job's enqueue (see traceAttempts).
    const w = new Worker<JobSpec, JobResult, string>(resolved.queueName, traceAttempts(deps.telemetry, handle), {
      // Shared: BullMQ runs only non-blocking commands on it and duplicates it for the blocking fetch.
      connection: redis,
      prefix: config.QUEUE_PREFIX,
      concurrency: resolved.perWorker,
      lockDuration: config.WORKER_LOCK_MS,
      // A crashed worker's jobs are found stalled within lockDuration + stalledInterval and re-run.
      stalledInterval: config.WORKER_LOCK_MS,
      // Stalls count as attempts (handled above, WORKER_LOST); BullMQ's own limit is only a backstop.
      maxStalledCount: config.JOB_ATTEMPTS,
      // The stalled check runs below, held back while Redis has only just restarted (JobLocks).
      skipStalledCheck: locks.canCheckStalled,
    });
    w.on('error', (e) => console.error(`[worker] ${key}: ${e.message}`));
    w.on('failed', onFailed);
    w.on('lockRenewalFailed', onLockRenewalFailed);
    workers.set(key, w);
  };

  /** Stop consuming a bucket: its Worker fetches no more jobs, its running ones finish (graceful close). */
  const stopBucket = (key: string) => {
    const w = workers.get(key);
    if (!w) return;
    workers.delete(key);
    const done = w.close().then(
      () => void closing.delete(key),
      (e: Error) => (closing.delete(key), console.error(`[worker] ${key}: close: ${e.message}`)),
    );
    closing.set(key, { worker: w, done });
  };

  /** One discovery tick: which registered buckets have work, then BucketSlots' plan applied. */
  const tick = async () => {
    try {
      const buckets = (await fleet.buckets()).filter((b) => !opts.buckets || opts.buckets(b));
      const byKey = new Map(buckets.map((b) => [fleet.resolve(b).key, b]));
      const work = new Map(await Promise.all([...byKey].map(async ([key, b]) => [key, await fleet.hasWork(b)] as const)));
      if (closed) return;
      const plan = slots.plan(work, Date.now(), new Set(closing.keys()));
      for (const key of plan.close) stopBucket(key);
      for (const key of plan.open) startBucket(byKey.get(key)!);
    } catch (e) {
      if (!closed) console.error(`[worker] bucket discovery: ${(e as Error).message}`);
    }
  };
  // Ticks run one at a time: the timer skips while one runs (a Redis outage holds it), discover() queues one.
  let ticking: Promise<void> = Promise.resolve();
  let inTick = false;
  const discover = (): Promise<void> => {
    ticking = ticking.then(async () => {
      inTick = true;
      await tick();
      inTick = false;
    });
    return ticking;
  };
  void discover();
  const timer = setInterval(() => {
    if (!inTick) void discover();
  }, config.BUCKET_DISCOVERY_MS);
  timer.unref();
  // Over the buckets given up too: their Workers still hold running jobs, and their queues stay checked.
  const stalledTimer = locks.canCheckStalled
    ? setInterval(() => void locks.checkStalled([...workers.values(), ...[...closing.values()].map((c) => c.worker)]), config.WORKER_LOCK_MS)
    : undefined;
  stalledTimer?.unref();
  // The reconciler: jobs whose end is not in their batch's books are found and recorded, so no batch hangs.
  const reconcileTimer = setInterval(
    () => void service.reconcile().catch((e: Error) => console.error(`[worker] reconcile: ${e.message}`)),
    config.RECONCILE_INTERVAL_MS,
  );
  reconcileTimer.unref();
  // The drip feed: drip-fed batches topped up as their jobs drain, finished books spilled to S3.
  // One pass at a time per process (a pass may take longer than the interval), one fleet-wide (its lock).
  let feeding = false;
  const feedTimer = setInterval(() => {
    if (feeding || closed) return;
    feeding = true;
    void service
      .feed()
      .catch((e: Error) => console.error(`[worker] feed: ${e.message}`))
      .finally(() => (feeding = false));
  }, config.FEED_INTERVAL_MS);
  feedTimer.unref();

  // Cancellation reaches whichever process runs the job: a broadcast every worker listens to.
  const sub = redis.duplicate();
  sub.on('error', () => {});
  void sub.subscribe(services.cancelChannel);
  sub.on('message', (_channel: string, jobId: string) => {
    for (const w of workers.values()) w.cancelJob(jobId, 'cancelled by request');
    for (const c of closing.values()) c.worker.cancelJob(jobId, 'cancelled by request');
  });

  // Batch finalisation (report to S3) and webhook delivery run on small queues of their own.
  const connection = redis;
  const control = new Worker(services.queueNames.control, async (job) => service.finalize(job.data.batchId as string).then((b) => ({ status: b.status, report: b.report })), {
    connection,
    prefix: config.QUEUE_PREFIX,
    concurrency: 2,
  });
  control.on('error', (e) => console.error(`[worker] control: ${e.message}`));
  const webhooks = new Worker(
    services.queueNames.webhooks,
    async (job) => {
      if (!config.WEBHOOK_SECRET) throw new UnrecoverableError('CONFIG_INVALID: WEBHOOK_SECRET is not set on this worker');
      return deliverWebhook(config.WEBHOOK_SECRET, job.data.url as string, job.data.body, job.attemptsMade + 1, job.id);
    },
    { connection, prefix: config.QUEUE_PREFIX, concurrency: 8 },
  );
  webhooks.on('error', (e) => console.error(`[worker] webhooks: ${e.message}`));

  return {
    workers,
    discover,
    reconcile: () => service.reconcile(),
    feed: () => service.feed(),
    async close(o: { handBack?: boolean } = {}) {
      closed = true;
      clearInterval(timer);
      clearInterval(reconcileTimer);
      clearInterval(feedTimer);
      if (stalledTimer) clearInterval(stalledTimer);
      if (o.handBack) {
        // Streams and jobs not yet in a provider session go back to the queue now (a stream resumes
        // from its checkpoint elsewhere); batch requests already at the provider finish here.
        handingBack = true;
        for (const r of running.values()) if (r.mode === 'stream' || !r.inSession) r.abort(HAND_BACK);
      }
      await Promise.all([...workers.values()].map((w) => w.close()));
      await Promise.all([...closing.values()].map((c) => c.done));
      await Promise.all([control.close(), webhooks.close()]);
      await deps.limiter.close?.();
      await services.close();
      await fleet.close();
      sub.disconnect();
      redis.disconnect();
    },
  };
}
