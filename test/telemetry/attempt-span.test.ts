/**
 * The attempt span's outcomes, on a stand-in BullMQ job (no Redis): completed, failed (unrecoverable
 * or out of attempts), retrying, re-scheduled after a rate limit; links from well-formed trace data
 * only; always a new root, even when called inside another span.
 */
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { JobSpec } from '@scribe-fleet/core';
import { otelTelemetry } from '@scribe-fleet/core/adapters/otel/otel-telemetry';
import { startTelemetry, type ShutdownTelemetry } from '@scribe-fleet/core/adapters/otel/setup';
import type { JobResult } from '@scribe-fleet/core';
import { traceAttempts, type JobHandler } from '@scribe-fleet/core/adapters/bullmq/attempt-span';

const exporter = new InMemorySpanExporter();
let shutdown: ShutdownTelemetry;
const telemetry = otelTelemetry({ name: 'test' });

beforeAll(() => {
  shutdown = startTelemetry({ serviceName: 'scribe-test', spanProcessors: [new SimpleSpanProcessor(exporter)], instrumentations: false });
});
afterAll(() => shutdown());
beforeEach(() => exporter.reset());

const RESULT: JobResult = { outputs: { json: 'k.json', txt: 'k.txt' }, bucket: 'b', duration: 4.5, sha256: 'x', requestId: 'req-1', words: 9, finalResults: 2, provider: 'local', model: 'm', mode: 'batch' };

function fakeJob(over: { attemptsMade?: number; attempts?: number; trace?: unknown; progress?: unknown } = {}): Job<JobSpec, JobResult, string> {
  return {
    id: 'tx_0123',
    name: 'local.batch',
    queueName: 'transcribe.local.default.default.batch',
    attemptsMade: over.attemptsMade ?? 0,
    opts: { attempts: over.attempts ?? 3 },
    progress: over.progress ?? 0,
    data: { source: { bucket: 'in-bucket', key: 'calls/a.wav', etag: 'e', size: 10 }, provider: 'local', model: 'm', mode: 'batch', ...(over.trace !== undefined ? { trace: over.trace } : {}) },
  } as unknown as Job<JobSpec, JobResult, string>;
}

async function attempt(handler: JobHandler, job = fakeJob()): Promise<{ span: ReadableSpan; error?: unknown }> {
  let error: unknown;
  await traceAttempts(telemetry, handler)(job, 'token').catch((e: unknown) => (error = e));
  const span = exporter.getFinishedSpans().find((s) => s.name.startsWith('process '))!;
  return { span, error };
}

it('completed: a CONSUMER root span with the job, its attempt and the result', async () => {
  const { span, error } = await attempt(async () => RESULT);
  expect(error).toBeUndefined();
  expect(span.name).toBe('process transcribe.local.default.default.batch');
  expect(span.kind).toBe(SpanKind.CONSUMER);
  expect(span.attributes).toMatchObject({
    'messaging.message.id': 'tx_0123',
    'messaging.destination.name': 'transcribe.local.default.default.batch',
    'bullmq.job.attempts.made': 0,
    'bullmq.job.attempts.max': 3,
    'scribe.attempt': 1,
    'scribe.outcome': 'completed',
    'transcription.audio_seconds': 4.5,
    'transcription.request_id': 'req-1',
    'scribe.outputs': 2,
    'scribe.source.bucket': 'in-bucket',
  });
  expect(span.attributes['scribe.source.key_sha256']).toMatch(/^[0-9a-f]{64}$/);
  expect(JSON.stringify(span.attributes)).not.toContain('calls/a.wav');
  expect(span.status.code).not.toBe(SpanStatusCode.ERROR);
});

it('unrecoverable: failed, with the stable code as error.type, and the same error rethrown', async () => {
  const err = new UnrecoverableError('SOURCE_NOT_FOUND: the object is gone');
  const { span, error } = await attempt(async () => Promise.reject(err));
  expect(error).toBe(err);
  expect(span.attributes).toMatchObject({ 'scribe.outcome': 'failed', 'error.type': 'SOURCE_NOT_FOUND' });
  expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'SOURCE_NOT_FOUND: the object is gone' });
  expect(span.events.map((e) => e.name)).toEqual(['exception']);
});

it('transient: retrying while attempts remain, failed on the last one', async () => {
  const fail = async () => Promise.reject(new Error('STORAGE_UNAVAILABLE: S3 is down'));
  let { span } = await attempt(fail, fakeJob({ attemptsMade: 1, attempts: 3 }));
  expect(span.attributes).toMatchObject({ 'scribe.outcome': 'retrying', 'error.type': 'STORAGE_UNAVAILABLE', 'scribe.attempt': 2 });
  exporter.reset();
  ({ span } = await attempt(fail, fakeJob({ attemptsMade: 2, attempts: 3 })));
  expect(span.attributes).toMatchObject({ 'scribe.outcome': 'failed', 'error.type': 'STORAGE_UNAVAILABLE', 'scribe.attempt': 3 });
});

it('rate-limited re-schedule: not an error, says re-scheduled and how often, DelayedError rethrown', async () => {
  const delayed = new DelayedError();
  const { span, error } = await attempt(async () => Promise.reject(delayed), fakeJob({ progress: { rateLimitDelays: 3 } }));
  expect(error).toBe(delayed);
  expect(span.attributes).toMatchObject({ 'scribe.outcome': 'rescheduled', 'scribe.rate_limit_delays': 3 });
  expect(span.attributes['error.type']).toBeUndefined();
  expect(span.status.code).not.toBe(SpanStatusCode.ERROR);
  expect(span.events.map((e) => e.name)).toEqual(['rescheduled']);
});

it('links to the context in the job data when it is well-formed, and ignores it otherwise', async () => {
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  let { span } = await attempt(async () => RESULT, fakeJob({ trace: { traceparent } }));
  expect(span.links.map((l) => [l.context.traceId, l.context.spanId])).toEqual([['0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331']]);
  expect(span.spanContext().traceId).not.toBe('0af7651916cd43dd8448eb211c80319c');
  for (const trace of ['00-garbage', { traceparent: 5 }, { traceparent: '00-00000000000000000000000000000000-0000000000000000-01' }, null]) {
    exporter.reset();
    ({ span } = await attempt(async () => RESULT, fakeJob({ trace })));
    expect(span.links).toEqual([]);
  }
});

it('is a new root even inside another span, and the processor spans are its children', async () => {
  await telemetry.span('outer', {}, () => traceAttempts(telemetry, () => telemetry.span('s3.put', {}, async () => RESULT))(fakeJob(), 'token'));
  const spans = exporter.getFinishedSpans();
  const root = spans.find((s) => s.name.startsWith('process '))!;
  const outer = spans.find((s) => s.name === 'outer')!;
  const put = spans.find((s) => s.name === 's3.put')!;
  expect(root.parentSpanContext).toBeUndefined();
  expect(root.spanContext().traceId).not.toBe(outer.spanContext().traceId);
  expect(put.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
});
