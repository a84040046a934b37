import { routingOf, type JobSpec } from '../../domain/job-spec';
import type { Attrs, SpanHandle, Telemetry } from '../../ports/telemetry';
import type { FleetQueues } from '../bullmq/fleet-queues';

/** The parts of an enqueue request the span describes. */
export interface EnqueueRequestShape {
  source?: string;
  out: string;
  provider?: string;
  model?: string;
  mode?: string;
  account?: string;
}

/** Counts an enqueue reports as it goes and at the end. */
export interface EnqueueCounts {
  listed: number;
  added: number;
  duplicates: number;
  skipped: number;
  batchId?: string;
}

/** The bucket queue the request's jobs go to (every job of one request shares its cap bucket). */
function destinationOf(req: EnqueueRequestShape, fleet: FleetQueues): string {
  const routing = routingOf(req);
  if (!routing) return fleet.config.QUEUE_NAME; // refused by validation anyway
  return fleet.bucketOf(routing).queueName;
}

const bucketOf = (url: string | undefined) => /^s3:\/\/([^/]+)/.exec(url ?? '')?.[1];

function countAttributes(c: EnqueueCounts): Attrs {
  return { 'scribe.enqueue.listed': c.listed, 'scribe.enqueue.added': c.added, 'scribe.enqueue.duplicates': c.duplicates, 'scribe.enqueue.skipped': c.skipped };
}

export interface EnqueueTracing {
  /** Puts the enqueue span's W3C context into a job's `trace` field (not part of its id). */
  decorate(spec: JobSpec): JobSpec;
  /** Report progress after each page (recorded as a `page` event). */
  page(counts: EnqueueCounts): void;
}

/**
 * The producer's side of a transcription trace. ONE span per enqueue REQUEST (a prefix or a
 * manifest, however many pages and jobs): `send <queue>`, PRODUCER, OTel messaging attributes. Its
 * W3C context is injected into every job's `spec.trace`, and each attempt's `process <queue>` span
 * links to it. Not per job (a million-file prefix would make a million spans) and not per page (the
 * request is what an operator started and wants to find); each page is a `page` event with the
 * running counts, and the instrumentations' ListObjectsV2, HEAD and Redis spans are its children.
 */
export async function traceEnqueue<R extends EnqueueCounts>(
  telemetry: Telemetry,
  fleet: FleetQueues,
  req: EnqueueRequestShape,
  run: (tracing: EnqueueTracing) => Promise<R>,
): Promise<R> {
  const queue = destinationOf(req, fleet);
  const attrs: Attrs = {
    'messaging.system': 'bullmq',
    'messaging.operation.type': 'send',
    'messaging.operation.name': 'send',
    'messaging.destination.name': queue,
    'scribe.enqueue.kind': req.source ? 'prefix' : 'manifest',
    'scribe.source.bucket': bucketOf(req.source),
    'scribe.output.bucket': bucketOf(req.out),
    'transcription.provider': req.provider ?? 'local',
    'transcription.model': req.model,
    'transcription.mode': req.mode ?? 'batch',
  };
  return telemetry.span(
    `send ${queue}`,
    attrs,
    async (span: SpanHandle) => {
      const carrier = telemetry.inject();
      const traced = Object.keys(carrier).length > 0;
      const res = await run({
        decorate: (spec) => (traced ? { ...spec, trace: carrier } : spec),
        page: (counts) => span.addEvent('page', countAttributes(counts)),
      });
      span.setAttributes({ ...countAttributes(res), 'messaging.batch.message_count': res.added, 'scribe.batch.id': res.batchId });
      return res;
    },
    { kind: 'producer' },
  );
}
