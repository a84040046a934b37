/**
 * The reconciler: what a batch's books missed, found and recorded, so no batch can hang (see
 * reconcile below).
 */
import type { BatchJobResult } from '../domain/batch';
import type { BatchDeps } from './deps';
import { finalizeBatch, scheduleFinalize } from './finalize-batch';
import { recordFinishedJob } from './job-lifecycle';

export type ReconcileDeps = Pick<BatchDeps, 'config' | 'storage' | 'queue' | 'batches' | 'jobEnds' | 'lock' | 'finalizeQueue' | 'outbox' | 'clock'>;

/** The fleet-wide lock one sweep holds (FleetLock names it; the Redis key is in adapters/redis/keys.ts). */
export const RECONCILE_LOCK = 'reconcile';

/**
 * The reconciler: find jobs whose end is not in a batch's books (BullMQ failed them on its own, a
 * write was lost in a Redis restart, a hook crashed half-way) and record them, and finalise
 * batches that are done but never finished, so no batch can hang. Runs on every worker every
 * RECONCILE_INTERVAL_MS; a fleet-wide lock makes one sweep run at a time. Cost per sweep: every
 * `active` job of the unfinished batches, and up to `queuedPerBatch` of their queued ones (a cursor
 * walks the rest over later sweeps).
 */
export async function reconcile(deps: ReconcileDeps, opts: { queuedPerBatch?: number } = {}): Promise<{ batches: number; recorded: number; finalised: number }> {
  const interval = deps.config.RECONCILE_INTERVAL_MS;
  if (!(await deps.lock.tryAcquire(RECONCILE_LOCK, Math.max(1000, interval - 500)))) return { batches: 0, recorded: 0, finalised: 0 };
  let recorded = 0;
  let finalised = 0;
  const ids = await deps.batches.unfinished();
  for (const b of ids) {
    const batch = await deps.batches.get(b);
    // A batch still being enqueued has books ahead of the queue: a manifest's is left until it is
    // sealed; a drip-fed one's queued jobs are swept below the positions whose pages are all in the
    // queue (none while a booked page awaits its enqueue: feed-batch.ts), read in one snapshot.
    const feed = batch ? await deps.batches.feedState(b) : null;
    if (!batch || (batch.listing && !feed)) continue;
    const below = feed ? (feed.redo.length ? 0 : feed.positions) : undefined;
    const from = await deps.batches.reconcileCursor(b);
    const limit = opts.queuedPerBatch ?? 2000;
    const queued = below === 0 ? [] : await deps.batches.jobIds(b, 'queued', from, limit, below);
    await deps.batches.setReconcileCursor(b, queued.length < limit ? 0 : from + queued.length);
    const candidates = [...(await deps.batches.jobIds(b, 'active', 0, 100_000)), ...queued];
    for (const jobId of candidates) {
      const known = await deps.jobEnds.get(jobId);
      if (known) {
        // Recorded for the job but not in these books (a lost write): apply it here.
        const t = await deps.batches.transition(b, jobId, known.state, known, known.duration ?? 0);
        if (t.applied) recorded += 1;
        if (t.last) await scheduleFinalize(deps, b);
        continue;
      }
      const job = await deps.queue.get(jobId);
      if (job) {
        if (await recordFinishedJob(deps, job)) recorded += 1;
      } else {
        // Neither in the queue nor ended: it vanished (a Redis restart lost its add). It ends failed, visibly.
        const cancelled = batch.status === 'cancelled';
        const r: BatchJobResult = { key: jobId, state: cancelled ? 'cancelled' : 'failed', errorCode: cancelled ? 'JOB_CANCELLED' : 'JOB_LOST', errorMessage: 'the job is no longer in the queue and its end was never recorded' };
        const t = await deps.batches.transition(b, jobId, r.state, r);
        if (t.applied) recorded += 1;
        if (t.last) await scheduleFinalize(deps, b);
      }
    }
    if (await deps.batches.needsFinalize(b)) {
      const stale = await deps.batches.doneSeenFor(b);
      // Done for two sweeps and still not finished: its finalisation was lost; run it here.
      if (stale >= 2 * interval) {
        await deps.batches.claimFinalize(b);
        await finalizeBatch(deps, b);
        finalised += 1;
      } else await scheduleFinalize(deps, b);
    }
  }
  return { batches: ids.length, recorded, finalised };
}
