/**
 * `scribe watch <batchId>`: follow a batch until it finishes. On a TTY, live bars on stderr (files,
 * audio hours, rate, ETA); with `--json`, one JSON line per tick on stdout and a final line; otherwise
 * a plain line when something changed (at most every 10 s) and a summary.
 */
import type { BatchProgress, BatchRecord } from '@scribe-fleet/core';
import type { BatchService } from '@scribe-fleet/core/app/batch-service';
import { bar, formatCount, formatDuration, formatHours, LiveBlock, percent, type TtyLike } from './progress';

/** One `watch` tick: the batch's progress (BatchProgress) plus what a watcher needs around it. */
export interface WatchTick extends BatchProgress {
  type: 'progress' | 'final';
  at: string;
  batchId: string;
  status: BatchRecord['status'];
  listing: boolean;
  counts: BatchRecord['counts'];
  /** Audio seconds transcribed per wall-clock second since the first job started. */
  realtimeFactor: number | null;
  report?: string;
  listError?: string;
  /** `budget`: no new session starts (a budget refused a job): `scribe resume`. */
  paused?: 'budget';
  pausedReason?: string;
}

/** How a finished batch ends for a script: all done, some failed, or cancelled. */
export type WatchOutcome = 'ok' | 'failed' | 'cancelled';

export function outcomeOf(batch: BatchRecord): WatchOutcome {
  if (batch.counts.failed > 0) return 'failed';
  if (batch.status === 'cancelled' || batch.counts.cancelled > 0) return 'cancelled';
  return 'ok';
}

export function isFinished(batch: BatchRecord): boolean {
  return Boolean(batch.finishedAt) && batch.status !== 'running' && !batch.listing;
}

export function tickOf(batch: BatchRecord, progress: BatchProgress, type: WatchTick['type'], now = Date.now()): WatchTick {
  const since = batch.startedAt ? Date.parse(batch.startedAt) : null;
  const end = batch.finishedAt ? Date.parse(batch.finishedAt) : now;
  const elapsed = since !== null ? (end - since) / 1000 : 0;
  return {
    type,
    at: new Date(now).toISOString(),
    batchId: batch.id,
    status: batch.status,
    listing: Boolean(batch.listing),
    counts: batch.counts,
    ...progress,
    realtimeFactor: elapsed > 0 ? progress.audioSecondsDone / elapsed : null,
    ...(batch.report ? { report: batch.report } : {}),
    ...(batch.listError ? { listError: batch.listError } : {}),
    ...(batch.paused ? { paused: batch.paused, ...(batch.pausedReason ? { pausedReason: batch.pausedReason } : {}) } : {}),
  };
}

export function barLines(t: WatchTick): string[] {
  const c = t.counts;
  const extra = [c.failed && `${formatCount(c.failed)} failed`, c.cancelled && `${formatCount(c.cancelled)} cancelled`, c.skipped && `${formatCount(c.skipped)} skipped`, c.active && `${formatCount(c.active)} running`]
    .filter(Boolean)
    .join(', ');
  const audioTotal = t.audioSecondsTotalEstimate;
  const audioFraction = audioTotal ? t.audioSecondsDone / audioTotal : t.fraction;
  return [
    `files  ${bar(t.fraction)} ${percent(t.fraction)}  ${formatCount(t.done)} / ${formatCount(t.total)}${t.listing ? '+ (listing)' : ''}${extra ? `  (${extra})` : ''}`,
    `audio  ${bar(audioFraction)} ${percent(audioFraction)}  ${formatHours(t.audioSecondsDone)} / ${audioTotal === null ? '?' : `~${formatHours(audioTotal)}`}`,
    `rate   ${t.filesPerSecond.toFixed(2)} files/s · ${t.realtimeFactor === null ? '–' : `${t.realtimeFactor.toFixed(1)}× real time`} · ETA ${t.etaSeconds === 0 && t.status === 'running' ? 'finishing' : formatDuration(t.etaSeconds)} · ${t.status}${t.paused ? ` · paused: ${t.paused}` : ''}`,
    ...(t.paused ? [`paused ${t.pausedReason ?? t.paused} (scribe resume ${t.batchId} --max-audio-hours H | --max-cost USD)`] : []),
  ];
}

export function summaryLine(t: WatchTick): string {
  const c = t.counts;
  return `batch ${t.batchId} ${t.status}: ${formatCount(c.completed)} completed, ${formatCount(c.failed)} failed, ${formatCount(c.cancelled)} cancelled, ${formatCount(c.skipped)} skipped of ${formatCount(t.total)}; audio ${formatHours(t.audioSecondsDone)}${t.report ? `; report ${t.report}` : ''}`;
}

export interface WatchOptions {
  intervalMs: number;
  json: boolean;
  stdout: TtyLike;
  stderr: TtyLike;
  /** Stop early (Ctrl-C): resolves with the last state seen. */
  signal?: AbortSignal;
  /**
   * Errors that mean "Redis or S3 is away for now" (default: none). `watch` waits them out, with
   * backoff from `intervalMs` up to 30 s, saying so on stderr (and as a `"type":"waiting"` JSON line),
   * instead of exiting: a batch outlives a Redis restart, and so does its watcher.
   */
  isUnavailable?: (e: unknown) => boolean;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** Poll the batch store until the batch has finished; returns the final tick and its outcome. */
export async function watchBatch(service: BatchService, batchId: string, opts: WatchOptions): Promise<{ final: WatchTick; outcome: WatchOutcome; interrupted: boolean }> {
  const live = new LiveBlock(opts.stderr, 0);
  let lastPlain = 0;
  let lastDone = -1;
  let outage: { since: number; backoff: number } | null = null;
  let last: WatchTick | null = null;
  for (;;) {
    let read: Awaited<ReturnType<BatchService['getBatch']>>;
    try {
      read = await service.getBatch(batchId);
    } catch (e) {
      if (!opts.isUnavailable?.(e)) throw e;
      if (opts.signal?.aborted && last) return { final: last, outcome: 'ok', interrupted: true };
      if (opts.signal?.aborted) throw e;
      outage = outage ? { since: outage.since, backoff: Math.min(30_000, outage.backoff * 2) } : { since: Date.now(), backoff: Math.max(250, opts.intervalMs) };
      const reason = e instanceof Error ? e.message : String(e);
      const waited = Math.round((Date.now() - outage.since) / 1000);
      if (opts.json) opts.stdout.write(`${JSON.stringify({ type: 'waiting', at: new Date().toISOString(), batchId, reason, waitedSeconds: waited })}\n`);
      else opts.stderr.write(`${new Date().toISOString()} waiting for Redis/S3 (${waited} s): ${reason}\n`);
      await sleep(outage.backoff, opts.signal);
      continue;
    }
    if (outage && !opts.json) opts.stderr.write(`${new Date().toISOString()} reconnected after ${Math.round((Date.now() - outage.since) / 1000)} s\n`);
    outage = null;
    const { batch, progress } = read;
    const finished = isFinished(batch);
    const tick = tickOf(batch, progress, finished ? 'final' : 'progress');
    last = tick;
    if (opts.json) opts.stdout.write(`${JSON.stringify(finished ? { ...tick, outcome: outcomeOf(batch) } : tick)}\n`);
    else if (live.enabled) live.render(barLines(tick), true);
    else if (!finished && (tick.done !== lastDone || Date.now() - lastPlain > 60_000) && Date.now() - lastPlain >= 10_000) {
      opts.stderr.write(`${new Date().toISOString()} ${formatCount(tick.done)}/${formatCount(tick.total)} done (${percent(tick.fraction).trim()}), ${formatCount(batch.counts.failed)} failed, ETA ${formatDuration(tick.etaSeconds)}\n`);
      lastPlain = Date.now();
      lastDone = tick.done;
    }
    if (finished || opts.signal?.aborted) {
      live.done();
      if (!opts.json) opts.stdout.write(`${summaryLine(tick)}\n`);
      return { final: tick, outcome: outcomeOf(batch), interrupted: !finished };
    }
    await sleep(opts.intervalMs, opts.signal);
  }
}
