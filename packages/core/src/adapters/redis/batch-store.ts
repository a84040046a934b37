import type { Redis } from 'ioredis';
import { BATCH_JOB_STATES, TERMINAL_STATES, type BatchJobResult, type BatchJobState, type BatchRecord } from '../../domain/batch';
import { parsePlanLink } from '../../domain/plan-progress';
import type { BatchCreate, BatchJobEntry, BatchStore, FeedState, TransitionResult, TransitionRule } from '../../ports/batch-store';
import { RedisKeys } from './keys';
import { defineScript, loadScript } from './scripts';

export type { BatchCreate, BatchJobEntry, TransitionRule } from '../../ports/batch-store';

/** batchMove's keys: state-set prefix, record, the state sets, results, index. */
const MOVE_KEYS = BATCH_JOB_STATES.length + 4;

type WithScripts = Redis & {
  batchMove(...args: Array<string | number>): Promise<[number, number, string, string]>;
  batchSeal(k1: string, k2: string): Promise<number>;
  batchFeed(...args: Array<string | number>): Promise<number>;
  batchFeedSettle(record: string, after: string): Promise<number>;
  batchFeedEnd(record: string, after: string): Promise<number>;
  batchSpill(...args: Array<string | number>): Promise<number>;
};

/** The record fields a drip-fed batch's feed keeps (see feedPage). */
const REDO = 'redo:';

/**
 * Batches in Redis. Per batch:
 *   <p>:batch:<id>            hash   the record's fields
 *   <p>:batch:<id>:s:<state>  zset   job ids in that state (score = position in the batch), for
 *                                    counts (ZCARD) and paged listing by state
 *   <p>:batch:<id>:r          hash   job id → compact result (for the report), deleted once it is written
 *   <p>:batch:<id>:parts      list   S3 keys of the report parts its finished jobs were spilled to
 *   <p>:batches               zset   batch ids by creation time
 *   <p>:job-batches:<jobId>   set    further batches a job belongs to (adopted by a later batch)
 *   <p>:reconcile-cursor      hash   batch id → the reconciler's next queued position
 * (keys spelled in redis/keys.ts). A job's state moves with one script (remove from every state set,
 * add to the new one: redis/scripts/batchMove-10.lua), so recording the same transition twice (a
 * retried attempt) changes nothing. Only this class knows the record's fields. The BatchStore port
 * (ports/batch-store.ts) over Redis.
 */
export class RedisBatchStore implements BatchStore {
  private readonly redis: WithScripts;
  private readonly keys: RedisKeys;
  constructor(redis: Redis, prefix: string) {
    this.redis = redis as WithScripts;
    this.keys = new RedisKeys(prefix);
    if (!('batchMove' in redis)) {
      // The move takes one key per state set besides the batch's own four: its file must say as many.
      const { numberOfKeys } = loadScript('batchMove');
      if (numberOfKeys !== MOVE_KEYS) throw new Error(`batchMove takes ${MOVE_KEYS} keys, its script file says ${numberOfKeys}`);
      for (const name of ['batchMove', 'batchSeal', 'batchFeed', 'batchFeedSettle', 'batchFeedEnd', 'batchSpill'] as const) defineScript(redis, name);
    }
  }

  private stateKeys(id: string): string[] {
    return BATCH_JOB_STATES.map((s) => this.keys.batchState(id, s));
  }

  /** The keys of batchMove and the scripts that share its layout. */
  private moveKeys(id: string): string[] {
    return [this.keys.batchStatePrefix(id), this.keys.batch(id), ...this.stateKeys(id), this.keys.batchResults(id), this.keys.batchIndex()];
  }

  async create(b: BatchCreate): Promise<void> {
    const fields: Record<string, string> = {
      id: b.id,
      createdAt: b.createdAt,
      status: 'running',
      source: b.source,
      out: b.out,
      provider: b.provider,
      mode: b.mode,
      total: '0',
      bytesTotal: '0',
      bytesDone: '0',
      audioSecondsDone: '0',
      sealed: '0',
    };
    if (b.model) fields.model = b.model;
    if (b.priority !== undefined) fields.priority = String(b.priority);
    if (b.webhookUrl) fields.webhookUrl = b.webhookUrl;
    if (b.plan) fields.plan = JSON.stringify({ id: b.plan.id, choice: b.plan.choice });
    if (b.feed !== undefined) {
      fields.feed = b.feed;
      fields.feedAfter = '';
    }
    await this.redis.multi().hset(this.keys.batch(b.id), fields).zadd(this.keys.batchIndex(), Date.parse(b.createdAt), b.id).exec();
  }

  /** Add a page of jobs (idempotent per job id). */
  async addJobs(id: string, entries: BatchJobEntry[]): Promise<void> {
    if (!entries.length) return;
    const m = this.redis.multi();
    const position = await this.redis.hincrby(this.keys.batch(id), 'positions', entries.length);
    let pos = position - entries.length;
    let added = 0;
    let bytes = 0;
    for (const e of entries) {
      const state = e.state ?? 'queued';
      m.zadd(this.keys.batchState(id, state), 'NX', pos++, e.jobId);
      if (e.result) m.hset(this.keys.batchResults(id), e.jobId, JSON.stringify(e.result));
      added += 1;
      bytes += e.bytes;
    }
    m.hincrby(this.keys.batch(id), 'total', added).hincrby(this.keys.batch(id), 'bytesTotal', bytes);
    await m.exec();
  }

  /** No more jobs will be added: the batch may finish. Returns true if it already has (all terminal). */
  async seal(id: string): Promise<boolean> {
    return (await this.redis.batchSeal(this.keys.batchStatePrefix(id), this.keys.batch(id))) === 1;
  }

  /**
   * Record a job's new state (and its result when terminal). `rule` (see scripts/batchMove-10.lua):
   * 'end' for a terminal outcome — the first one recorded wins, so a second report of the same job (a
   * stalled attempt that finished after all, a reconciler sweep, a retried hook) changes nothing and
   * counts no audio twice; 'start' for 'active'; 'force' for operator moves (redrive). `applied` says
   * whether this call changed the books, `state`/`result` what they hold now, and `last` is true
   * exactly once per batch: for the call that saw every job reach a terminal state, which must then
   * finalise it.
   */
  async transition(
    id: string,
    jobId: string,
    state: BatchJobState,
    result?: BatchJobResult,
    audioSeconds = 0,
    bytes = 0,
    rule: TransitionRule = TERMINAL_STATES.includes(state) ? 'end' : state === 'active' ? 'start' : 'force',
  ): Promise<TransitionResult> {
    const [applied, last, current, stored] = await this.redis.batchMove(...this.moveKeys(id), jobId, state, 0, result ? JSON.stringify(result) : '', String(audioSeconds), String(bytes), rule);
    return { applied: applied === 1, last: last === 1, state: current ? (current as BatchJobState) : null, result: stored ? (JSON.parse(stored) as BatchJobResult) : null };
  }

  /** A drip-fed batch's feed (`after` null once its listing has ended), or null for a batch that has none. */
  async feedState(id: string): Promise<FeedState | null> {
    const h = await this.redis.hgetall(this.keys.batch(id));
    if (h.feed === undefined) return null;
    const redo = Object.entries(h)
      .filter(([k]) => k.startsWith(REDO))
      .map(([k, last]) => ({ after: k.slice(REDO.length), last }));
    return { request: h.feed, after: h.feedAfter ?? null, positions: Number(h.positions ?? 0), redo };
  }

  async feedPage(id: string, after: string, last: string, entries: BatchJobEntry[]): Promise<number | null> {
    const args: Array<string | number> = [after, last, entries.length];
    for (const e of entries) args.push(e.jobId, e.state ?? 'queued', e.bytes, e.result ? JSON.stringify(e.result) : '');
    const n = await this.redis.batchFeed(...this.moveKeys(id), ...args);
    return n < 0 ? null : n;
  }

  async feedSettled(id: string, after: string): Promise<void> {
    await this.redis.batchFeedSettle(this.keys.batch(id), after);
  }

  async endFeed(id: string, after?: string): Promise<boolean> {
    return (await this.redis.batchFeedEnd(this.keys.batch(id), after ?? '*')) === 1;
  }

  /** The oldest `limit` jobs in a terminal state, with their results (what a spill takes). */
  async finishedPage(id: string, state: 'completed' | 'skipped', limit: number): Promise<Array<[string, BatchJobResult | null]>> {
    const ids = await this.redis.zrange(this.keys.batchState(id, state), 0, limit - 1);
    if (!ids.length) return [];
    const rs = await this.redis.hmget(this.keys.batchResults(id), ...ids);
    return ids.map((j, i) => [j, rs[i] ? (JSON.parse(rs[i]!) as BatchJobResult) : null]);
  }

  async finishedCount(id: string, state: 'completed' | 'skipped'): Promise<number> {
    return this.redis.zcard(this.keys.batchState(id, state));
  }

  async spill(id: string, state: 'completed' | 'skipped', partKey: string, jobIds: string[]): Promise<number> {
    if (!jobIds.length) return 0;
    return this.redis.batchSpill(...this.moveKeys(id), this.keys.batchParts(id), state, partKey, ...jobIds);
  }

  async spillParts(id: string): Promise<string[]> {
    return this.redis.lrange(this.keys.batchParts(id), 0, -1);
  }

  /** Where the books have a job now (null: not in this batch). */
  async stateOf(id: string, jobId: string): Promise<BatchJobState | null> {
    const scores = await Promise.all(this.stateKeys(id).map((k) => this.redis.zscore(k, jobId)));
    const i = scores.findIndex((s) => s !== null);
    return i < 0 ? null : BATCH_JOB_STATES[i]!;
  }

  /**
   * Open a finished batch again (redrive): it finalises, with a new report, when the redriven jobs end.
   * `runs` counts the openings, so each run's `batch.completed` delivery has an id of its own.
   */
  async reopen(id: string): Promise<number> {
    const [, , runs] = (await this.redis.multi().hdel(this.keys.batch(id), 'finalising', 'finishedAt', 'report').hset(this.keys.batch(id), 'status', 'running').hincrby(this.keys.batch(id), 'runs', 1).exec()) ?? [];
    return Number(runs?.[1] ?? 0);
  }

  /** How many times the batch was opened again (0 for its first run). */
  async runs(id: string): Promise<number> {
    return Number((await this.redis.hget(this.keys.batch(id), 'runs')) ?? 0);
  }

  /**
   * Batches that may need the reconciler: running, or done without a finish time (a lost
   * finalisation). Read from the newest `limit` batches of the index.
   */
  async unfinished(limit = 1000): Promise<string[]> {
    const ids = await this.redis.zrevrange(this.keys.batchIndex(), 0, limit - 1);
    if (!ids.length) return [];
    const p = this.redis.pipeline();
    for (const b of ids) p.hmget(this.keys.batch(b), 'finishedAt', 'status');
    const rows = (await p.exec()) ?? [];
    return ids.filter((_, i) => {
      const [finishedAt] = (rows[i]?.[1] as Array<string | null> | undefined) ?? [];
      return !finishedAt;
    });
  }

  /** Sealed with every job terminal, but not finished (its finalisation was claimed and then lost, or never scheduled). */
  async needsFinalize(id: string): Promise<boolean> {
    const b = await this.get(id);
    if (!b || b.finishedAt || b.listing) return false;
    const done = TERMINAL_STATES.reduce((n, s) => n + b.counts[s], 0);
    return done >= b.total;
  }

  /**
   * How long ago (ms) the reconciler first saw the batch done but not finished: 0 the first time,
   * which is recorded now (the ISO time in the record's `doneSeenAt`).
   */
  async doneSeenFor(id: string): Promise<number> {
    const stale = Date.now() - Date.parse((await this.redis.hget(this.keys.batch(id), 'doneSeenAt')) ?? new Date().toISOString());
    await this.redis.hsetnx(this.keys.batch(id), 'doneSeenAt', new Date().toISOString());
    return stale;
  }

  /** Claim the batch's finalisation (the reconciler's path: the claim may have been made and lost). */
  async claimFinalize(id: string): Promise<void> {
    await this.redis.hset(this.keys.batch(id), 'finalising', '1');
  }

  async get(id: string): Promise<BatchRecord | null> {
    const h = await this.redis.hgetall(this.keys.batch(id));
    if (!h.id) return null;
    const cards = await Promise.all(this.stateKeys(id).map((k) => this.redis.zcard(k)));
    // Jobs whose entries went to an S3 part of the report still count (record `spilled:<state>`).
    const counts = Object.fromEntries(BATCH_JOB_STATES.map((s, i) => [s, cards[i]! + Number(h[`spilled:${s}`] ?? 0)])) as Record<BatchJobState, number>;
    const rec: BatchRecord = {
      id: h.id,
      createdAt: h.createdAt!,
      status: (h.status as BatchRecord['status']) ?? 'running',
      source: h.source!,
      out: h.out!,
      provider: h.provider!,
      mode: h.mode!,
      total: Number(h.total ?? 0),
      bytesTotal: Number(h.bytesTotal ?? 0),
      bytesDone: Number(h.bytesDone ?? 0),
      audioSecondsDone: Number(h.audioSecondsDone ?? 0),
      counts,
    };
    if (h.model) rec.model = h.model;
    if (h.priority) rec.priority = Number(h.priority);
    if (h.startedAt) rec.startedAt = h.startedAt;
    if (h.sealed !== '1') rec.listing = true;
    if (h.listError) rec.listError = h.listError;
    if (h.finishedAt) rec.finishedAt = h.finishedAt;
    if (h.report) rec.report = h.report;
    if (h.webhookUrl) rec.webhookUrl = h.webhookUrl;
    // One JSON field; a damaged one reads as no link rather than failing the batch.
    const plan = parsePlanLink(h.plan);
    if (plan) rec.plan = plan;
    if (h.feedAfter !== undefined) rec.feeding = true;
    if (h.paused === 'budget') {
      rec.paused = 'budget';
      if (h.pausedReason) rec.pausedReason = h.pausedReason;
    }
    return rec;
  }

  async setPaused(id: string, pause: { paused: 'budget'; reason: string } | null): Promise<void> {
    const key = this.keys.batch(id);
    if (!pause) {
      await this.redis.hdel(key, 'paused', 'pausedReason');
      return;
    }
    // Only on a batch that still has its record (never a stray partial record).
    if (await this.redis.hexists(key, 'id')) await this.redis.hset(key, { paused: pause.paused, pausedReason: pause.reason.slice(0, 500) });
  }

  async setFields(id: string, fields: Partial<Record<'status' | 'finishedAt' | 'report' | 'listError', string>>): Promise<void> {
    await this.redis.hset(this.keys.batch(id), fields as Record<string, string>);
  }

  /** Record when the batch's first job started (only the first call counts). */
  async markStarted(id: string, at = new Date().toISOString()): Promise<void> {
    await this.redis.hsetnx(this.keys.batch(id), 'startedAt', at);
  }

  async isCancelled(id: string): Promise<boolean> {
    return (await this.redis.hget(this.keys.batch(id), 'status')) === 'cancelled';
  }

  /** Job ids of a batch in one state, paged in batch order. */
  async jobIds(id: string, state: BatchJobState, offset = 0, limit = 100, below?: number): Promise<string[]> {
    if (below !== undefined) return this.redis.zrangebyscore(this.keys.batchState(id, state), '-inf', `(${below}`, 'LIMIT', offset, limit);
    return this.redis.zrange(this.keys.batchState(id, state), offset, offset + limit - 1);
  }

  /**
   * A page of a batch's jobs in batch order. Unfiltered, positions are 0..total-1 across the state
   * sets, so the page is the positions [offset, offset+limit); filtered by a state, it pages by rank.
   */
  async jobsPage(id: string, offset = 0, limit = 100, state?: BatchJobState): Promise<Array<{ jobId: string; state: BatchJobState; position: number }>> {
    const page: Array<{ jobId: string; state: BatchJobState; position: number }> = [];
    const states = state ? [state] : BATCH_JOB_STATES;
    for (const s of states) {
      const ws = state
        ? await this.redis.zrange(this.keys.batchState(id, s), offset, offset + limit - 1, 'WITHSCORES')
        : await this.redis.zrangebyscore(this.keys.batchState(id, s), offset, offset + limit - 1, 'WITHSCORES');
      for (let i = 0; i < ws.length; i += 2) page.push({ jobId: ws[i]!, state: s, position: Number(ws[i + 1]) });
    }
    return page.sort((a, b) => a.position - b.position);
  }

  async result(id: string, jobId: string): Promise<BatchJobResult | null> {
    const r = await this.redis.hget(this.keys.batchResults(id), jobId);
    return r ? (JSON.parse(r) as BatchJobResult) : null;
  }

  /** Results in pages (HSCAN), for writing the report without holding them all in memory. */
  async *results(id: string): AsyncGenerator<Array<[string, BatchJobResult]>> {
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(this.keys.batchResults(id), cursor, 'COUNT', 1000);
      cursor = next;
      const page: Array<[string, BatchJobResult]> = [];
      for (let i = 0; i < flat.length; i += 2) page.push([flat[i]!, JSON.parse(flat[i + 1]!) as BatchJobResult]);
      if (page.length) yield page;
    } while (cursor !== '0');
  }

  /** After the report is in S3, drop the per-job results (the record and state sets stay for counts). */
  async compact(id: string): Promise<void> {
    await this.redis.del(this.keys.batchResults(id), this.keys.batchParts(id));
  }

  /** Newest batches first. */
  async recent(limit = 20, offset = 0): Promise<string[]> {
    return this.redis.zrevrange(this.keys.batchIndex(), offset, offset + limit - 1);
  }

  /** How many batches the index holds. */
  async count(): Promise<number> {
    return this.redis.zcard(this.keys.batchIndex());
  }

  /** A job enqueued by an earlier batch also belongs to this one (it reports to both). */
  async addJobBatch(jobId: string, batchId: string): Promise<void> {
    await this.redis.sadd(this.keys.jobBatches(jobId), batchId);
  }

  /** The batches a job was adopted by (besides the one in its spec). */
  async jobBatches(jobId: string): Promise<string[]> {
    return this.redis.smembers(this.keys.jobBatches(jobId));
  }

  /** Where the reconciler's next sweep of the batch's queued jobs starts (0 at first). */
  async reconcileCursor(batchId: string): Promise<number> {
    return Number((await this.redis.hget(this.keys.reconcileCursor(), batchId)) ?? 0);
  }

  async setReconcileCursor(batchId: string, position: number): Promise<void> {
    await this.redis.hset(this.keys.reconcileCursor(), batchId, position);
  }
}
