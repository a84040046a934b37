import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { AttemptDecision, AttemptOutcome } from '../../domain/attempt';
import { sha256Hex } from '../../domain/canonical';
import { parseFailedReason } from '../../domain/errors';
import type { JobResult } from '../../domain/job-result';
import type { JobSpec } from '../../domain/job-spec';
import type { Attrs, SpanHandle, Telemetry, TraceCarrier } from '../../ports/telemetry';

export type JobHandler = (job: Job<JobSpec, JobResult, string>, token?: string, signal?: AbortSignal) => Promise<JobResult>;

export type { AttemptOutcome };

/** The decision the worker's glue took on an attempt, carried by the error it throws to BullMQ. */
const decisions = new WeakMap<object, AttemptDecision>();

/** Tag the error thrown to BullMQ with the attempt's decision (decideFailedAttempt), for the span. */
export function withDecision<E extends Error>(error: E, decision: AttemptDecision): E {
  decisions.set(error, decision);
  return error;
}

/** The W3C trace context the producer put in the job data, if it is well-formed. */
function carrierOf(data: Partial<JobSpec>): TraceCarrier | undefined {
  const t: unknown = data.trace;
  if (!t || typeof t !== 'object') return undefined;
  const entries = Object.entries(t).filter((e): e is [string, string] => typeof e[1] === 'string');
  return entries.length ? Object.fromEntries(entries) : undefined;
}

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

/**
 * What the span says about the job, read from its (not yet validated) data. The source key is
 * recorded as a hash: file names in an archive can be personal; the job id finds the job.
 */
function jobAttributes(job: Job<JobSpec, JobResult, string>, data: Partial<JobSpec>): Attrs {
  const key = str(data.source?.key);
  return {
    'messaging.system': 'bullmq',
    'messaging.operation.type': 'process',
    'messaging.operation.name': 'process',
    'messaging.destination.name': job.queueName,
    'messaging.message.id': job.id,
    'bullmq.job.name': job.name,
    'bullmq.job.attempts.made': job.attemptsMade,
    'bullmq.job.attempts.max': job.opts.attempts,
    'scribe.attempt': job.attemptsMade + 1,
    'scribe.batch.id': str(data.batchId),
    'scribe.source.bucket': str(data.source?.bucket),
    'scribe.source.key_sha256': key === undefined ? undefined : sha256Hex(key),
    'scribe.source.size': typeof data.source?.size === 'number' ? data.source.size : undefined,
    'transcription.provider': str(data.provider),
    'transcription.model': str(data.model),
    'transcription.mode': str(data.mode),
  };
}

/**
 * A handler that did not say what it decided (not the worker's glue) is read by BullMQ's own rules:
 * a DelayedError is a re-schedule, an UnrecoverableError or the last attempt a failure.
 */
function inferDecision(job: Job<JobSpec, JobResult, string>, e: unknown): AttemptDecision {
  if (e instanceof DelayedError) return { outcome: 'rescheduled', reason: 'RATE_LIMITED', delayMs: 0, progress: {} };
  const code = e instanceof Error ? (parseFailedReason(e.message)?.code ?? 'INTERNAL') : 'INTERNAL';
  const final = e instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
  return { outcome: final ? 'failed' : 'retrying', code };
}

function recordFailure(span: SpanHandle, job: Job<JobSpec, JobResult, string>, e: unknown): void {
  const d = (e instanceof Error ? decisions.get(e) : undefined) ?? inferDecision(job, e);
  if (d.outcome === 'rescheduled') {
    // Back to `delayed` without spending an attempt: a rate limit, storage away, or a hand-back.
    const delays = (job.progress as { rateLimitDelays?: unknown } | undefined)?.rateLimitDelays;
    span.setAttributes({ 'scribe.outcome': d.outcome, 'scribe.rate_limit_delays': d.progress.rateLimitDelays ?? (typeof delays === 'number' ? delays : undefined) });
    span.addEvent('rescheduled', { reason: d.reason });
    return;
  }
  span.setAttributes({ 'scribe.outcome': d.outcome });
  span.recordError(e, d.code);
}

/**
 * Every attempt of every job as a trace of its own: a NEW ROOT span `process <queue>` (CONSUMER)
 * around the handler, LINKED to the enqueue span whose context the producer put in `spec.trace`.
 * A link, not a parent (the OTel messaging conventions' default): an archival job may run hours
 * or days after its enqueue, once per attempt, and a parent would make one unbounded trace of a
 * whole batch. The processor's spans (`s3.get`, `audio.prepare`, `decode`, `slot.wait`,
 * `session <provider>`, `s3.put`) are its children. The outcome (completed, failed or retrying with
 * its code as `error.type`, or re-scheduled after a rate limit) is recorded on it.
 */
export function traceAttempts(telemetry: Telemetry, handler: JobHandler): JobHandler {
  return async (job, token, signal) => {
    const data = (job.data ?? {}) as Partial<JobSpec>;
    const carrier = carrierOf(data);
    const settled = await telemetry.span(
      `process ${job.queueName}`,
      jobAttributes(job, data),
      async (span): Promise<{ ok: true; result: JobResult } | { ok: false; error: unknown }> => {
        try {
          const result = await handler(job, token, signal);
          span.setAttributes({
            'scribe.outcome': 'completed' satisfies AttemptOutcome,
            'transcription.audio_seconds': result.duration,
            'transcription.words': result.words,
            'transcription.request_id': result.requestId,
            'scribe.outputs': Object.keys(result.outputs).length,
          });
          return { ok: true, result };
        } catch (error) {
          recordFailure(span, job, error);
          return { ok: false, error };
        }
      },
      { kind: 'consumer', root: true, ...(carrier ? { links: [carrier] } : {}) },
    );
    if (!settled.ok) throw settled.error;
    return settled.result;
  };
}
