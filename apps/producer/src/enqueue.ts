import type { Storage, Telemetry } from '@scribe-fleet/core';
import type { BatchService, CreateBatchProgress, CreateBatchRequest, CreateBatchResult } from '@scribe-fleet/core/app/batch-service';
import type { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { batchServiceOver } from '@scribe-fleet/core/adapters/bullmq/open-services';
import { traceEnqueue } from '@scribe-fleet/core/adapters/otel/enqueue-span';
import { otelTelemetry } from '@scribe-fleet/core/adapters/otel/otel-telemetry';

export type EnqueuePrefixRequest = Omit<CreateBatchRequest, 'source' | 'manifest'> & { source: string };
export type EnqueueProgress = CreateBatchProgress;

export interface EnqueueDeps {
  storage: Storage;
  fleet: FleetQueues;
  onProgress?: (p: EnqueueProgress) => void;
  /** Called once the request is validated and the batch exists (before its first page is enqueued). */
  onCreated?: (batchId: string) => void;
  /** Default: OpenTelemetry (a no-op unless ./instrumentation.ts or a test started the SDK). */
  telemetry?: Telemetry;
}

/**
 * Enqueue one job per object under a prefix, as a batch (see BatchService.create): listed page by page
 * with ListObjectsV2 and added with one `addBulk` per page; deterministic job ids, so enqueuing the
 * same prefix again adds nothing; files whose outputs exist are skipped unless `force`.
 */
export async function enqueuePrefix(req: EnqueuePrefixRequest, deps: EnqueueDeps): Promise<CreateBatchResult & { jobIds: string[] }> {
  const res = await enqueueBatch(req, deps, { returnIdsUpTo: Number.MAX_SAFE_INTEGER });
  return { ...res, jobIds: res.jobIds ?? [] };
}

/**
 * Enqueue a batch from a prefix or a manifest (BatchService.create inside one `send <queue>` span).
 * `returnIdsUpTo` bounds the job ids kept in memory (a million-file prefix would hold them all).
 */
export async function enqueueBatch(req: CreateBatchRequest, deps: EnqueueDeps, opts: { returnIdsUpTo?: number; service?: BatchService } = {}): Promise<CreateBatchResult> {
  // Without a service of the caller's, one over the caller's fleet, for this request only.
  const own = opts.service ? undefined : batchServiceOver({ config: deps.fleet.config, redis: deps.fleet.redis, storage: deps.storage, fleet: deps.fleet });
  const service = opts.service ?? own!.service;
  try {
    // One `send <queue>` span per request; its trace context rides in every job's `spec.trace`.
    return await traceEnqueue(deps.telemetry ?? otelTelemetry({ name: 'scribe-producer' }), deps.fleet, req, (tracing) =>
      service.create(req, {
        ...(opts.returnIdsUpTo ? { returnIdsUpTo: opts.returnIdsUpTo } : {}),
        ...(deps.onCreated ? { onCreated: deps.onCreated } : {}),
        decorate: tracing.decorate,
        onProgress: (p) => {
          tracing.page(p);
          deps.onProgress?.(p);
        },
      }),
    );
  } finally {
    await own?.close();
  }
}
