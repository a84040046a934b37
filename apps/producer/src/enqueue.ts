import type { Storage, Telemetry } from '@scribe-fleet/core';
import { BatchService, type CreateBatchProgress, type CreateBatchRequest, type CreateBatchResult } from '@scribe-fleet/core/adapters/batch-service';
import type { FleetQueues } from '@scribe-fleet/core/adapters/fleet-queues';
import { traceEnqueue } from '@scribe-fleet/core/adapters/otel/enqueue-span';
import { otelTelemetry } from '@scribe-fleet/core/adapters/otel/otel-telemetry';

export type EnqueuePrefixRequest = Omit<CreateBatchRequest, 'source' | 'manifest'> & { source: string };
export type EnqueueProgress = CreateBatchProgress;

export interface EnqueueDeps {
  storage: Storage;
  fleet: FleetQueues;
  onProgress?: (p: EnqueueProgress) => void;
  /** Default: OpenTelemetry (a no-op unless ./instrumentation.ts or a test started the SDK). */
  telemetry?: Telemetry;
}

/**
 * Enqueue one job per object under a prefix, as a batch (see BatchService.create): listed page by page
 * with ListObjectsV2 and added with one `addBulk` per page; deterministic job ids, so enqueuing the
 * same prefix again adds nothing; files whose outputs exist are skipped unless `force`.
 */
export async function enqueuePrefix(req: EnqueuePrefixRequest, deps: EnqueueDeps): Promise<CreateBatchResult & { jobIds: string[] }> {
  const service = new BatchService({ config: deps.fleet.config, redis: deps.fleet.redis, storage: deps.storage, fleet: deps.fleet });
  try {
    // One `send <queue>` span per request; its trace context rides in every job's `spec.trace`.
    const res = await traceEnqueue(deps.telemetry ?? otelTelemetry({ name: 'scribe-producer' }), deps.fleet, req, (tracing) =>
      service.create(req, {
        returnIdsUpTo: Number.MAX_SAFE_INTEGER,
        decorate: tracing.decorate,
        onProgress: (p) => {
          tracing.page(p);
          deps.onProgress?.(p);
        },
      }),
    );
    return { ...res, jobIds: res.jobIds ?? [] };
  } finally {
    await service.close();
  }
}
