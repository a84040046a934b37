/**
 * Finishing a batch: its finalisation is scheduled once per run (when the last job's end is
 * recorded, or by the reconciler), and run by the worker's control queue: the report (JSONL, one
 * line per file) and a summary to storage, the batch marked finished, `batch.completed` queued.
 */
import { Readable } from 'node:stream';
import { batchProgress, type BatchJobResult, type BatchRecord } from '../domain/batch';
import { routingOf } from '../domain/job-spec';
import { priceFor, type PriceEntry } from '../domain/prices';
import { estimatedCost } from '../domain/usage';
import { BatchNotFoundError } from '../domain/errors';
import { formatS3Url } from '../domain/s3-url';
import { nowIso, nowMs, type BatchDeps } from './deps';
import { reportLocation } from './validate';
import { queueWebhook } from './webhooks';

export async function scheduleFinalize(deps: Pick<BatchDeps, 'batches' | 'finalizeQueue'>, batchId: string): Promise<void> {
  // One finalisation per run of the batch (a redrive starts a new run): adding it twice adds nothing.
  const runs = await deps.batches.runs(batchId);
  await deps.finalizeQueue.scheduleFinalize(batchId, runs);
}

/** One line of a batch's report (JSONL): a job's compact result. */
export function reportLine(jobId: string, r: BatchJobResult): string {
  return JSON.stringify({
    job_id: jobId,
    key: r.key,
    status: r.state,
    duration: r.duration ?? null,
    request_id: r.requestId ?? null,
    outputs: r.outputs ?? null,
    error_code: r.errorCode ?? null,
    error_message: r.errorMessage ?? null,
    warnings: r.warnings ?? [],
  });
}

/** What a batch summary says it cost: its audio hours, and their estimated cost from the price table. */
export interface BatchSpend {
  /** The batch's audio seconds done (each job's once, its first end) ÷ 3600. */
  audioHours: number;
  /** audio minutes × the table's USD per minute for its provider/model/mode; null when the table has no entry. */
  estimatedCostUsd: number | null;
  /** The entry used (null when none). */
  price: { usdPerMinute: number; perChannel?: boolean; source: string; asOf: string } | null;
}

/**
 * A batch's spend from its books: the price of its (provider, model, mode) in the operator's table,
 * then the shipped defaults. Per-channel billing of multichannel jobs is not counted: the books keep
 * audio seconds, not channels (the estimate is then a lower bound).
 */
export function batchSpend(batch: Pick<BatchRecord, 'provider' | 'model' | 'mode' | 'audioSecondsDone'>, prices: readonly PriceEntry[] = []): BatchSpend {
  const routing = routingOf({ provider: batch.provider, mode: batch.mode, ...(batch.model ? { model: batch.model } : {}) });
  const entry = routing ? priceFor(routing, prices) : null;
  const seconds = batch.audioSecondsDone;
  return {
    audioHours: Math.round((seconds / 3600) * 1e6) / 1e6,
    estimatedCostUsd: entry ? estimatedCost(seconds, entry.usdPerMinute) : null,
    price: entry ? { usdPerMinute: entry.usdPerMinute, ...(entry.perChannel ? { perChannel: true } : {}), source: entry.source, asOf: entry.asOf } : null,
  };
}

/** Write the report (JSONL, one line per file) and a summary to S3, mark the batch finished, notify. Idempotent. */
export async function finalizeBatch(deps: Pick<BatchDeps, 'config' | 'storage' | 'batches' | 'outbox' | 'clock' | 'prices'>, batchId: string): Promise<BatchRecord> {
  const batch = await deps.batches.get(batchId);
  if (!batch) throw new BatchNotFoundError(`batch ${batchId} not found`);
  if (batch.finishedAt && batch.report) return batch;
  // Checked again against this process's S3_ALLOWED_BUCKETS: the record was read back from Redis.
  const out = reportLocation(deps.config, batch.out, batchId);
  const base = out.base;
  const store = deps.batches;
  const parts = await store.spillParts(batchId);
  const storage = deps.storage;
  const lines = Readable.from(
    (async function* () {
      // Parts first: finished jobs the feeder spilled to S3 (feed-batch.ts), already report lines.
      for (const key of parts) {
        const { body } = await storage.get(out.bucket, key);
        for await (const chunk of body) yield chunk as Buffer;
      }
      for await (const page of store.results(batchId)) yield page.map(([jobId, r]) => reportLine(jobId, r)).join('\n') + '\n';
    })(),
  );
  await deps.storage.put(out.bucket, `${base}.jsonl`, lines, { contentType: 'application/x-ndjson' });
  const finishedAt = nowIso(deps);
  const reportUrl = formatS3Url({ bucket: out.bucket, key: `${base}.jsonl` });
  const final: BatchRecord = { ...batch, status: batch.status === 'cancelled' ? 'cancelled' : 'finished', finishedAt, report: reportUrl };
  const summary = { ...final, progress: batchProgress(final, nowMs(deps)), ...batchSpend(final, deps.prices) };
  await deps.storage.put(out.bucket, `${base}.summary.json`, `${JSON.stringify(summary, null, 2)}\n`, { contentType: 'application/json' });
  await deps.batches.setFields(batchId, { status: final.status, finishedAt, report: reportUrl });
  const runs = await deps.batches.runs(batchId);
  await queueWebhook(
    deps,
    'batch.completed',
    { batchId, status: final.status, counts: final.counts, total: final.total, audioSecondsDone: final.audioSecondsDone, report: reportUrl },
    { batchUrl: batch.webhookUrl, batchId, dedupe: `${batchId}|${runs}` },
  );
  return final;
}
