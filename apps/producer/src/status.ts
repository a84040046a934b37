import { parseFailedReason } from '@scribe-fleet/core';
import type { TranscribeQueue } from '@scribe-fleet/core/adapters/queue';

export const JOB_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'] as const;

export interface QueueStatus {
  counts: Record<(typeof JOB_STATES)[number], number>;
  /** Failed jobs by error code (from the most recent `sample` failures). */
  failuresByCode: Record<string, number>;
}

export async function queueStatus(queue: TranscribeQueue, sample = 1000): Promise<QueueStatus> {
  const counts = (await queue.getJobCounts(...JOB_STATES)) as QueueStatus['counts'];
  const failuresByCode: Record<string, number> = {};
  if (counts.failed > 0) {
    for (const job of await queue.getFailed(0, sample - 1)) {
      const code = parseFailedReason(job?.failedReason)?.code ?? 'UNKNOWN';
      failuresByCode[code] = (failuresByCode[code] ?? 0) + 1;
    }
  }
  return { counts, failuresByCode };
}
