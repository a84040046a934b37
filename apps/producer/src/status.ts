import { parseFailedReason } from '@scribe-fleet/core';
import type { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';

export const JOB_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'] as const;

export interface QueueStatus {
  counts: Record<(typeof JOB_STATES)[number], number>;
  /** Failed jobs by error code (from the most recent `sample` failures). */
  failuresByCode: Record<string, number>;
}

/** Counts summed over every cap-bucket queue, and failures by code. */
export async function queueStatus(fleet: FleetQueues, sample = 1000): Promise<QueueStatus> {
  const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as QueueStatus['counts'];
  const failuresByCode: Record<string, number> = {};
  for (const queue of await fleet.allQueues()) {
    const c = await queue.getJobCounts(...JOB_STATES);
    for (const s of JOB_STATES) counts[s] += c[s] ?? 0;
    if ((c.failed ?? 0) > 0) {
      for (const job of await queue.getFailed(0, sample - 1)) {
        const code = parseFailedReason(job?.failedReason)?.code ?? 'UNKNOWN';
        failuresByCode[code] = (failuresByCode[code] ?? 0) + 1;
      }
    }
  }
  return { counts, failuresByCode };
}
