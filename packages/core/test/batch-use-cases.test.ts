/**
 * The batch use cases (app/) over recording fakes of their ports: no Redis, no BullMQ. What each
 * operation asks of the queue and the books, in which order, and the state rules it enforces.
 */
import { createHash } from 'node:crypto';
import { BatchService } from '../src/app/batch-service';
import type { BatchDeps } from '../src/app/deps';
import { webhookDeliveryId } from '../src/app/webhooks';
import { outcomeOfFinishedJob, resultOfEnd } from '../src/domain/job-end';
import { loadConfig, type Config } from '../src/domain/config';
import { parseJobSpec } from '../src/domain/job-spec';
import type { QueuedJob } from '../src/ports/job-queue';

type Call = [string, unknown[]];

/** A port whose every method records its call and answers from `answers` (else undefined). */
function fake<T>(name: string, log: Call[], answers: Record<string, (...args: any[]) => unknown> = {}): T {
  return new Proxy(
    {},
    {
      get: (_t, prop) =>
        typeof prop !== 'string' || prop === 'then'
          ? undefined
          : async (...args: unknown[]) => {
              log.push([`${name}.${prop}`, args]);
              return answers[prop]?.(...args);
            },
    },
  ) as T;
}

const spec = parseJobSpec({ source: { bucket: 'audio-in', key: 'a/one.wav', etag: 'e1', size: 100 }, output: { bucket: 'audio-out', keyBase: 'o/one' }, options: {}, batchId: 'b_20240101-000000_00000001' });

function job(over: Partial<QueuedJob> = {}): QueuedJob {
  return { id: 'tx_1111111111111111111111111111111111111111', spec, state: 'waiting', attemptsMade: 0, stalls: 0, progress: 0, createdAt: 1_700_000_000_000, ...over };
}

function world(opts: { config?: Record<string, string>; queue?: Record<string, (...a: any[]) => unknown>; batches?: Record<string, (...a: any[]) => unknown>; lock?: boolean } = {}) {
  const log: Call[] = [];
  const config: Config = loadConfig({ REDIS_URL: 'redis://127.0.0.1:1', QUEUE_NAME: 'q', ...(opts.config ?? {}) });
  // A drip feed's cursor, as the books keep it (compare-and-set on `after`).
  let feed: { request: string; after: string | null; positions: number; redo: [] } | null = null;
  const deps: BatchDeps = {
    config,
    storage: fake('storage', log),
    queue: fake('queue', log, { backlog: () => ({ bucket: 'b', pending: 0, window: 1000 }), ...(opts.queue ?? {}) }),
    batches: fake('batches', log, {
      create: (b: { feed?: string }) => void (feed = b.feed ? { request: b.feed, after: '', positions: 0, redo: [] } : null),
      feedState: () => feed,
      feedPage: (_id: string, after: string, last: string, entries: unknown[]) => (feed && feed.after === after ? ((feed.after = last), entries.length) : null),
      endFeed: (_id: string, after?: string) => (feed && feed.after !== null && (after === undefined || feed.after === after) ? ((feed.after = null), true) : false),
      seal: () => false,
      isCancelled: () => false,
      jobBatches: () => [],
      transition: (_b: string, _j: string, state: string) => ({ applied: true, last: false, state, result: null }),
      runs: () => 0,
      ...(opts.batches ?? {}),
    }),
    jobEnds: fake('jobEnds', log, { claim: (_id: string, _at: number, outcome: unknown) => ({ first: true, outcome, gen: 0 }) }),
    lock: fake('lock', log, { tryAcquire: () => opts.lock ?? true }),
    finalizeQueue: fake('finalizeQueue', log),
    outbox: fake('outbox', log, { deliveries: () => ({ total: 0, deliveries: [] }) }),
    clock: { now: () => Date.parse('2024-05-01T12:00:00Z') },
  };
  return { log, service: new BatchService(deps), names: () => log.map(([n]) => n) };
}

describe('the end of a finished job (domain/job-end.ts)', () => {
  it('reads completed, failed, lost and unfinished jobs', () => {
    const result = { outputs: { json: 'k.json' }, bucket: 'out', duration: 3, sha256: 'x', requestId: 'r', words: 1, finalResults: 1, provider: 'local', model: 'm', mode: 'batch' };
    expect(outcomeOfFinishedJob(job({ state: 'completed', result }))).toEqual({ result });
    expect(outcomeOfFinishedJob(job({ state: 'completed' }))).toEqual({ error: { code: 'INTERNAL', message: 'completed without a result' } });
    expect(outcomeOfFinishedJob(job({ state: 'failed', failedReason: 'PROVIDER_TIMEOUT: slow' }))).toEqual({ error: { code: 'PROVIDER_TIMEOUT', message: 'slow' } });
    expect(outcomeOfFinishedJob(job({ state: 'failed', stalls: 2, failedReason: 'job stalled more than allowable limit' }))).toEqual({
      error: { code: 'WORKER_LOST', message: "the job's worker was lost (2 stall(s)): job stalled more than allowable limit" },
    });
    expect(outcomeOfFinishedJob(job({ state: 'failed' }))).toEqual({ error: { code: 'INTERNAL', message: 'failed without a reason' } });
    expect(outcomeOfFinishedJob(job({ state: 'active' }))).toBeNull();
    expect(resultOfEnd('k', { error: { code: 'JOB_CANCELLED', message: 'm' } })).toEqual({ key: 'k', state: 'cancelled', errorCode: 'JOB_CANCELLED', errorMessage: 'm' });
  });
});

describe('webhooks (app/webhooks.ts)', () => {
  it('derives delivery ids as wh- + sha256(event|owner|dedupe|url)[0..32]', () => {
    const expected = `wh-${createHash('sha256').update('job.completed|b_20240101-000000_00000001|tx_1111111111111111111111111111111111111111|0|1|http://h/x').digest('hex').slice(0, 32)}`;
    expect(webhookDeliveryId('job.completed', 'b_20240101-000000_00000001', 'tx_1111111111111111111111111111111111111111|0|1', 'http://h/x')).toBe(expected);
    expect(webhookDeliveryId('batch.completed', undefined, 'd', 'u')).toBe(`wh-${createHash('sha256').update('batch.completed||d|u').digest('hex').slice(0, 32)}`);
  });

  it('queues one delivery per distinct URL, under the batch; nothing without a secret', async () => {
    const w = world({ config: { WEBHOOK_SECRET: 'secret-0123456789abcdef', WEBHOOK_URL: 'http://h/fleet' } });
    await w.service.queueWebhook('batch.completed', { batchId: 'b_20240101-000000_00000001' }, { batchUrl: 'http://h/batch', dedupe: 'b_20240101-000000_00000001|0' });
    await w.service.queueWebhook('batch.completed', { batchId: 'b_20240101-000000_00000001' }, { batchUrl: 'http://h/fleet', dedupe: 'b_20240101-000000_00000001|0' });
    const enqueued = w.log.map(([, a]) => a[0] as { id: string; url: string; batchId?: string; body: { createdAt: string } });
    expect(enqueued.map((d) => [d.url, d.batchId, d.id])).toEqual([
      ['http://h/batch', 'b_20240101-000000_00000001', webhookDeliveryId('batch.completed', 'b_20240101-000000_00000001', 'b_20240101-000000_00000001|0', 'http://h/batch')],
      ['http://h/fleet', 'b_20240101-000000_00000001', webhookDeliveryId('batch.completed', 'b_20240101-000000_00000001', 'b_20240101-000000_00000001|0', 'http://h/fleet')],
      ['http://h/fleet', 'b_20240101-000000_00000001', webhookDeliveryId('batch.completed', 'b_20240101-000000_00000001', 'b_20240101-000000_00000001|0', 'http://h/fleet')],
    ]);
    expect(enqueued[0]!.body.createdAt).toBe('2024-05-01T12:00:00.000Z');
    const silent = world({ config: { WEBHOOK_URL: 'http://h/fleet' } });
    await silent.service.queueWebhook('job.failed', { jobId: 'tx_1111111111111111111111111111111111111111' }, { dedupe: 'x' });
    expect(silent.log).toEqual([]);
  });

  it('pages deliveries from 0, 100 by default, 1 to 500', async () => {
    const w = world();
    await w.service.webhookDeliveries('b_20240101-000000_00000001');
    await w.service.webhookDeliveries('b_20240101-000000_00000001', { offset: -5, limit: 10_000 });
    await w.service.webhookDeliveries('b_20240101-000000_00000001', { limit: 0 });
    expect(w.log.map(([, a]) => a)).toEqual([
      ['b_20240101-000000_00000001', 0, 100],
      ['b_20240101-000000_00000001', 0, 500],
      ['b_20240101-000000_00000001', 0, 1],
    ]);
  });
});

describe('cancel and redrive (app/operations.ts)', () => {
  it('cancelling a finished job is INVALID_STATE, and touches nothing', async () => {
    for (const state of ['completed', 'failed'] as const) {
      const w = world({ queue: { get: () => job({ state }) } });
      await expect(w.service.cancelJob('tx_1111111111111111111111111111111111111111')).rejects.toMatchObject({ code: 'INVALID_STATE', message: `job tx_1111111111111111111111111111111111111111 already ${state}: nothing to cancel` });
      expect(w.names()).toEqual(['queue.get']);
    }
  });

  it('an unknown job is JOB_NOT_FOUND', async () => {
    const w = world({ queue: { get: () => undefined } });
    await expect(w.service.cancelJob('tx_9999999999999999999999999999999999999999')).rejects.toMatchObject({ code: 'JOB_NOT_FOUND' });
    await expect(w.service.redriveJob('tx_9999999999999999999999999999999999999999')).rejects.toMatchObject({ code: 'JOB_NOT_FOUND' });
    await expect(w.service.getJob('tx_9999999999999999999999999999999999999999')).rejects.toMatchObject({ code: 'JOB_NOT_FOUND' });
  });

  it('a running job is aborted where it runs; one taken between the calls too', async () => {
    const running = world({ queue: { get: () => job({ state: 'active' }) } });
    expect(await running.service.cancelJob('tx_1111111111111111111111111111111111111111')).toEqual({ id: 'tx_1111111111111111111111111111111111111111', state: 'cancelling' });
    expect(running.names()).toEqual(['queue.get', 'queue.abortRunning']);
    const raced = world({ queue: { get: () => job({ state: 'waiting' }), remove: () => 'active' } });
    expect(await raced.service.cancelJob('tx_1111111111111111111111111111111111111111')).toEqual({ id: 'tx_1111111111111111111111111111111111111111', state: 'cancelling' });
    expect(raced.names()).toEqual(['queue.get', 'queue.remove', 'queue.abortRunning']);
  });

  it('a waiting job is removed and its end recorded as JOB_CANCELLED', async () => {
    const w = world({ queue: { get: () => job({ state: 'waiting' }), remove: () => 'removed' } });
    expect(await w.service.cancelJob('tx_1111111111111111111111111111111111111111')).toEqual({ id: 'tx_1111111111111111111111111111111111111111', state: 'cancelled' });
    expect(w.names()).toEqual(['queue.get', 'queue.remove', 'jobEnds.claim', 'batches.jobBatches', 'batches.transition', 'batches.get']);
    expect(w.log[2]![1]).toEqual(['tx_1111111111111111111111111111111111111111', 1_700_000_000_000, { key: 'a/one.wav', state: 'cancelled', errorCode: 'JOB_CANCELLED', errorMessage: 'cancelled before it started' }]);
  });

  it('redrives only failed jobs: reopen the end, the books, then retry in the queue', async () => {
    const notFailed = world({ queue: { get: () => job({ state: 'completed' }) } });
    await expect(notFailed.service.redriveJob('tx_1111111111111111111111111111111111111111')).rejects.toMatchObject({ code: 'INVALID_STATE', message: 'job tx_1111111111111111111111111111111111111111 is completed: only failed jobs can be redriven' });
    const w = world({ queue: { get: () => job({ state: 'failed', failedReason: 'X: y' }) } });
    expect(await w.service.redriveJob('tx_1111111111111111111111111111111111111111')).toEqual({ id: 'tx_1111111111111111111111111111111111111111', state: 'waiting' });
    expect(w.names()).toEqual(['queue.get', 'jobEnds.reopen', 'batches.jobBatches', 'batches.reopen', 'batches.transition', 'queue.retry']);
    expect(w.log[4]![1]).toEqual(['b_20240101-000000_00000001', 'tx_1111111111111111111111111111111111111111', 'queued', undefined, 0, 0, 'force']);
  });

  it('a finished batch cannot be cancelled; a batch without failed jobs cannot be redriven', async () => {
    const rec = { id: 'b_20240101-000000_00000001', finishedAt: '2024-01-01T00:00:00Z', status: 'finished' };
    const w = world({ batches: { get: () => rec, jobIds: () => [] } });
    await expect(w.service.cancelBatch('b_20240101-000000_00000001')).rejects.toMatchObject({ code: 'INVALID_STATE', message: 'batch b_20240101-000000_00000001 already finished: nothing to cancel' });
    await expect(w.service.redriveBatch('b_20240101-000000_00000001')).rejects.toMatchObject({ code: 'INVALID_STATE', message: 'batch b_20240101-000000_00000001 has no failed jobs: nothing to redrive' });
    const none = world({ batches: { get: () => null } });
    await expect(none.service.cancelBatch('b_20240101-000000_0000000f')).rejects.toMatchObject({ code: 'BATCH_NOT_FOUND' });
  });
});

describe('worker hooks, finalisation and the reconciler', () => {
  it('schedules one finalisation per run', async () => {
    const w = world({ batches: { runs: () => 3 } });
    await w.service.scheduleFinalize('b_20240101-000000_00000001');
    expect(w.log).toEqual([
      ['batches.runs', ['b_20240101-000000_00000001']],
      ['finalizeQueue.scheduleFinalize', ['b_20240101-000000_00000001', 3]],
    ]);
  });

  it('records a finished queued job through jobEnded, and skips an unfinished one', async () => {
    const w = world();
    expect(await w.service.recordFinishedJob(job({ state: 'active' }))).toBe(false);
    expect(w.log).toEqual([]);
    expect(await w.service.recordFinishedJob(job({ state: 'failed', failedReason: 'PROVIDER_AUTH: no' }))).toBe(true);
    expect(w.log[0]).toEqual(['jobEnds.claim', ['tx_1111111111111111111111111111111111111111', 1_700_000_000_000, { key: 'a/one.wav', state: 'failed', errorCode: 'PROVIDER_AUTH', errorMessage: 'no' }]]);
  });

  it('a sweep runs only under the fleet lock (leased for the interval less 500 ms, at least 1 s)', async () => {
    const held = world({ lock: false, config: { RECONCILE_INTERVAL_MS: '5000' } });
    expect(await held.service.reconcile()).toEqual({ batches: 0, recorded: 0, finalised: 0 });
    expect(held.log).toEqual([['lock.tryAcquire', ['reconcile', 4500]]]);
    const free = world({ config: { RECONCILE_INTERVAL_MS: '1000' }, batches: { unfinished: () => [] } });
    expect(await free.service.reconcile()).toEqual({ batches: 0, recorded: 0, finalised: 0 });
    expect(free.log).toEqual([
      ['lock.tryAcquire', ['reconcile', 1000]],
      ['batches.unfinished', []],
    ]);
  });
});

describe('creating a batch (app/create-batch.ts)', () => {
  it('a listed key that cannot be written back safely fails alone (INVALID_S3_URL in the books); the rest of the listing is enqueued', async () => {
    const objects = [
      { bucket: 'audio-in', key: 'in/good.wav', etag: '"e1"', size: 10 },
      { bucket: 'audio-in', key: 'in/../escape.wav', etag: '"e2"', size: 20 },
      { bucket: 'audio-in', key: 'in/after.wav', etag: '"e3"', size: 30 },
    ];
    const added: unknown[][] = [];
    const w = world({
      queue: { add: (specs: unknown[]) => (added.push(specs), { added: specs.length, duplicates: 0, duplicateIds: [] }) },
    });
    (w as any).log.length = 0;
    const deps = (w.service as any).deps as BatchDeps;
    (deps as any).storage = {
      async *listPages(bucket: string, prefix: string) {
        const page = objects.filter((o) => o.bucket === bucket && o.key.startsWith(prefix));
        if (page.length) yield page;
      },
      head: async () => null,
    };
    const res = await w.service.create({ source: 's3://audio-in/in/', out: 's3://audio-out/out/', provider: 'local' });
    expect(res).toMatchObject({ listed: 3, added: 2, ignored: 0, skipped: 0 });
    expect((added[0] as Array<{ source: { key: string } }>).map((s) => s.source.key)).toEqual(['in/good.wav', 'in/after.wav']);
    const addJobs = w.log.find(([n]) => n === 'batches.feedPage')![1][3] as Array<{ key: string; state?: string; result?: { errorCode?: string } }>;
    expect(addJobs.map((e) => [e.key, e.state ?? 'queued', e.result?.errorCode])).toEqual([
      ['in/../escape.wav', 'failed', 'INVALID_S3_URL'],
      ['in/good.wav', 'queued', undefined],
      ['in/after.wav', 'queued', undefined],
    ]);
  });

  it('a manifest line with an option the batch provider does not take refuses the manifest (UNSUPPORTED_OPTION naming the line) before any lookup or batch', async () => {
    const w = world();
    const text = [
      JSON.stringify({ source: 's3://audio-in/a.wav', options: { language: 'en' } }),
      JSON.stringify({ source: 's3://audio-in/b.wav' }),
      JSON.stringify({ source: 's3://audio-in/c.wav', options: { diarize: true } }),
    ].join('\n');
    const err = await w.service.create({ manifest: { text, format: 'jsonl' }, out: 's3://audio-out/o/', provider: 'openai' }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'UNSUPPORTED_OPTION',
      message: 'manifest line 3: option "diarize" is not supported by openai whisper-1 (batch); supported: language, prompt, temperature',
      details: { line: 3, option: 'diarize', provider: 'openai', model: 'whisper-1', mode: 'batch' },
    });
    // Refused while reading: no object looked up, no batch, nothing queued.
    expect(w.names()).toEqual([]);
    // The same lines for Deepgram are taken (the lookup then runs: the fake storage answers nothing).
    const dg = await w.service.create({ manifest: { text, format: 'jsonl' }, out: 's3://audio-out/o/', provider: 'deepgram' }).catch((e: unknown) => e);
    expect(dg).not.toMatchObject({ code: 'UNSUPPORTED_OPTION' });
    expect(w.names()[0]).toMatch(/^storage\./);
  });

  it('feeds a prefix page by page from its cursor (StartAfter the last key booked), listing one page ahead; a listing error surfaces after the pages before it are enqueued', async () => {
    const events: string[] = [];
    const w = world({
      config: { ENQUEUE_PAGE_SIZE: '1' },
      queue: {
        add: async (specs: Array<{ source: { key: string } }>) => {
          events.push(`add ${specs[0]!.source.key}`);
          return { added: specs.length, duplicates: 0, duplicateIds: [] };
        },
      },
    });
    const deps = (w.service as any).deps as BatchDeps;
    const keys = ['in/p1.wav', 'in/p2.wav', 'in/p3.wav'];
    (deps as any).storage = {
      async *listPages(_b: string, _p: string, o: { startAfter?: string } = {}) {
        const n = keys.findIndex((k) => !o.startAfter || k > o.startAfter) + 1;
        events.push(`list ${n}`);
        if (n === 3) throw new Error('S3 went away');
        yield [{ bucket: 'audio-in', key: keys[n - 1]!, etag: `"e${n}"`, size: n }];
      },
      head: async () => null,
    };
    await expect(w.service.create({ source: 's3://audio-in/in/', out: 's3://audio-out/out/', provider: 'local' })).rejects.toThrow('S3 went away');
    // The refusal check lists the first key; then from the cursor, page n + 1 listed (StartAfter page
    // n's last key) while page n is booked and enqueued.
    expect(events).toEqual(['list 1', 'list 1', 'list 2', 'add in/p1.wav', 'list 3', 'add in/p2.wav']);
    const listError = w.log.find(([n, a]) => n === 'batches.setFields' && (a[1] as { listError?: string }).listError);
    expect(listError?.[1][1]).toEqual({ listError: 'S3 went away' });
    expect(w.log.filter(([n]) => n === 'batches.feedPage').map(([, a]) => [a[1], a[2]])).toEqual([
      ['', 'in/p1.wav'],
      ['in/p1.wav', 'in/p2.wav'],
    ]);
    expect(w.names()).toContain('batches.endFeed');
    expect(w.names()).toContain('batches.seal');
  });
});
