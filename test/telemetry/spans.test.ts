/**
 * The span tree of real jobs, exported to memory: producer (enqueuePrefix) → Redis → worker
 * (startWorker + createDeps, local recogniser) → S3, all in this process with the SDK started here.
 * One batch job, one streaming job (a ~4 s sample, streamed in real time) and one job that fails.
 */
import { Redis } from 'ioredis';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { startTelemetry, type ShutdownTelemetry } from '@scribe-fleet/core/adapters/otel/setup';
import { FleetQueues } from '@scribe-fleet/core/adapters/bullmq/fleet-queues';
import { enqueuePrefix } from '@scribe-fleet/producer';
import { createDeps, startWorker, type RunningWorker } from '@scribe-fleet/worker';
import { testStorage, uniqueBucket } from '../helpers/env';
import { sampleFiles, testConfig, uploadSamples, waitForJobs, type Outcome } from '../helpers/fleet';

jest.setTimeout(60_000);

const exporter = new InMemorySpanExporter();
let shutdown: ShutdownTelemetry;
const config = testConfig();
const storage = testStorage();
const bucket = uniqueBucket('otel-spans');
let fleet: FleetQueues;
let redis: Redis;
let worker: RunningWorker;
const jobs: Record<'batch' | 'stream' | 'bad', { id: string; outcome: Outcome }> = {} as never;

beforeAll(async () => {
  shutdown = startTelemetry({ serviceName: 'scribe-test', spanProcessors: [new SimpleSpanProcessor(exporter)], instrumentations: false });
  const samples = await sampleFiles([{ name: 'otel-spans.wav', voice: 'kal16', format: 'wav', text: 'the quick brown fox jumps over the lazy dog' }]);
  await uploadSamples(storage, bucket, 'in/', samples);
  await storage.put(bucket, 'bad/notes.wav', Buffer.from('this is a text file, not audio\n'.repeat(50)));
  redis = new Redis(config.REDIS_URL);
  fleet = new FleetQueues(config, redis);
  worker = startWorker(config, createDeps(config));
  const requests = {
    batch: { source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/batch/`, mode: 'batch' },
    stream: { source: `s3://${bucket}/in/`, out: `s3://${bucket}/out/stream/`, mode: 'stream' },
    bad: { source: `s3://${bucket}/bad/`, out: `s3://${bucket}/out/bad/`, mode: 'batch' },
  };
  const ids: Record<string, string> = {};
  for (const [name, req] of Object.entries(requests)) {
    const res = await enqueuePrefix(req, { storage, fleet });
    expect(res.jobIds).toHaveLength(1);
    ids[name] = res.jobIds[0]!;
  }
  await worker.discover();
  const outcomes = await waitForJobs(fleet, Object.values(ids), 45_000);
  for (const [name, id] of Object.entries(ids)) jobs[name as keyof typeof jobs] = { id, outcome: outcomes.find((o) => o.id === id)! };
});

afterAll(async () => {
  await worker?.close();
  await fleet?.close();
  redis?.disconnect();
  await shutdown?.();
});

const spans = () => exporter.getFinishedSpans();
const idOf = (s: ReadableSpan) => s.spanContext().spanId;
const childrenOf = (s: ReadableSpan) => spans().filter((c) => c.parentSpanContext?.spanId === idOf(s)).sort((a, b) => (a.startTime[0] - b.startTime[0]) * 1e9 + (a.startTime[1] - b.startTime[1]));
const childNamed = (s: ReadableSpan, name: string) => childrenOf(s).find((c) => c.name === name)!;
/** `name(children…)`, children sorted by name: the tree's shape in one comparable string. */
const shape = (s: ReadableSpan): string => {
  const kids = childrenOf(s).map(shape).sort();
  return kids.length ? `${s.name}(${kids.join(' ')})` : s.name;
};
const attemptSpan = (jobId: string) => {
  const found = spans().filter((s) => s.name.startsWith('process ') && s.attributes['messaging.message.id'] === jobId);
  expect(found).toHaveLength(1); // one attempt, one trace
  return found[0]!;
};
const enqueueSpanLinkedFrom = (root: ReadableSpan) => {
  expect(root.links).toHaveLength(1);
  const link = root.links[0]!.context;
  return spans().find((s) => s.spanContext().spanId === link.spanId && s.spanContext().traceId === link.traceId)!;
};

describe.each(['batch', 'stream'] as const)('a %s job', (mode) => {
  it('completes', () => expect(jobs[mode].outcome.state).toBe('completed'));

  it('is a new root span `process <queue>` (CONSUMER) with the messaging attributes and the outcome', async () => {
    const root = attemptSpan(jobs[mode].id);
    const job = (await fleet.getJob(jobs[mode].id))!;
    expect(root.name).toBe(`process ${job.queueName}`);
    expect(root.kind).toBe(SpanKind.CONSUMER);
    expect(root.parentSpanContext).toBeUndefined();
    expect(root.attributes).toMatchObject({
      'messaging.system': 'bullmq',
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
      'messaging.destination.name': job.queueName,
      'messaging.message.id': jobs[mode].id,
      'bullmq.job.attempts.made': 0,
      'scribe.attempt': 1,
      'scribe.outcome': 'completed',
      'transcription.provider': 'local',
      'transcription.mode': mode,
      'scribe.source.bucket': bucket,
    });
    expect(root.attributes['scribe.source.key_sha256']).toMatch(/^[0-9a-f]{64}$/);
    expect(root.status.code).not.toBe(SpanStatusCode.ERROR);
  });

  it('links (not parents) to the enqueue span, a PRODUCER `send <queue>` span in another trace', async () => {
    const root = attemptSpan(jobs[mode].id);
    const send = enqueueSpanLinkedFrom(root);
    expect(send).toBeDefined();
    expect(send.name).toBe(root.name.replace(/^process /, 'send '));
    expect(send.kind).toBe(SpanKind.PRODUCER);
    expect(send.spanContext().traceId).not.toBe(root.spanContext().traceId);
    expect(send.attributes).toMatchObject({ 'messaging.system': 'bullmq', 'messaging.operation.type': 'send', 'messaging.batch.message_count': 1, 'scribe.enqueue.added': 1 });
    expect(send.events.map((e) => e.name)).toContain('page');
    // The context travelled in the job data, which is otherwise unchanged (the id ignores it).
    const job = (await fleet.getJob(jobs[mode].id))!;
    expect(job.data.trace?.traceparent).toBe(`00-${send.spanContext().traceId}-${send.spanContext().spanId}-01`);
  });

  it('has the span tree: s3.get under audio.prepare, slot.wait, the session (decode + s3.get), four s3.put', () => {
    const root = attemptSpan(jobs[mode].id);
    expect(shape(root)).toBe(`${root.name}(audio.prepare(s3.get) s3.put s3.put s3.put s3.put session local(decode s3.get) slot.wait)`);
    const puts = childrenOf(root).filter((s) => s.name === 's3.put');
    // txt, srt and vtt are PUT together (in any order), the JSON only after all three have ended: it
    // marks a complete set.
    const format = (s: ReadableSpan) => s.attributes['scribe.output.format'] as string;
    const json = puts.find((s) => format(s) === 'json')!;
    const others = puts.filter((s) => s !== json);
    expect(others.map(format).sort()).toEqual(['srt', 'txt', 'vtt']);
    const ms = ([sec, ns]: [number, number]) => sec * 1e3 + ns / 1e6;
    // Span start times are anchored to the millisecond (seen in CI: a start of …519 ms after an end at
    // …519.08 ms), so the JSON may start up to 1 ms "before" the end it followed; a PUT to the S3 server
    // takes several, so a JSON PUT running beside the others would still show.
    for (const o of others) expect(ms(json.startTime)).toBeGreaterThanOrEqual(ms(o.endTime) - 1);
    expect(childNamed(childNamed(root, 'audio.prepare'), 's3.get').attributes['scribe.s3.range']).toBe('bytes=0-15');
    expect(childNamed(root, 'slot.wait').attributes['scribe.cap.bucket']).toBe(`local:default:default:${mode}`);
    // Every span of the attempt is in the attempt's trace.
    const trace = spans().filter((s) => s.spanContext().traceId === root.spanContext().traceId);
    expect(trace.every((s) => s === root || s.parentSpanContext !== undefined)).toBe(true);
  });

  it('the session span carries provider, audio, bytes, chunks, results and events', () => {
    const root = attemptSpan(jobs[mode].id);
    const session = childNamed(root, 'session local');
    const result = jobs[mode].outcome.state === 'completed' ? jobs[mode].outcome.result : undefined;
    expect(session.kind).toBe(SpanKind.CLIENT);
    const a = session.attributes;
    expect(a).toMatchObject({ 'transcription.provider': 'local', 'transcription.model': result!.model, 'transcription.mode': mode, 'transcription.request_id': result!.requestId, 'transcription.reconnects': 0 });
    expect(a['transcription.audio_seconds']).toBeCloseTo(result!.duration, 3);
    expect(a['transcription.audio_seconds'] as number).toBeGreaterThan(3);
    // 16 kHz s16le: 32 000 bytes a second.
    expect(Math.abs((a['transcription.bytes_sent'] as number) / 32_000 - result!.duration)).toBeLessThan(0.2);
    expect(a['transcription.chunks_sent'] as number).toBeGreaterThan(0);
    expect(a['transcription.final_results']).toBe(result!.finalResults);
    const events = session.events.map((e) => e.name);
    expect(events.filter((n) => n === 'session.first_result')).toHaveLength(1);
    expect(events.filter((n) => n === 'session.final')).toHaveLength(result!.finalResults);
    expect(events.indexOf('session.first_result')).toBeLessThan(events.indexOf('session.final'));
    const decode = childNamed(session, 'decode');
    expect(decode.attributes['scribe.decode.pcm_bytes']).toBe(a['transcription.bytes_sent']);
  });
});

it('a stream records its pacing: lateness p50 ≤ p99 ≤ max, drift at the end, real-time factor ≈ 1', () => {
  const a = childNamed(attemptSpan(jobs.stream.id), 'session local').attributes;
  const p50 = a['transcription.pacing.lateness_p50_ms'] as number;
  const p99 = a['transcription.pacing.lateness_p99_ms'] as number;
  const max = a['transcription.pacing.lateness_max_ms'] as number;
  expect(p50).toBeGreaterThanOrEqual(0);
  expect(p99).toBeGreaterThanOrEqual(p50);
  expect(max).toBeGreaterThanOrEqual(p99);
  expect(typeof a['transcription.pacing.drift_at_end_ms']).toBe('number');
  expect(a['transcription.pacing.early_sends']).toBe(0);
  expect(a['transcription.rtf'] as number).toBeGreaterThan(0.9);
  // 100 ms chunks.
  expect(Math.abs((a['transcription.chunks_sent'] as number) - (a['transcription.audio_seconds'] as number) * 10)).toBeLessThanOrEqual(2);
});

it('a batch session has no pacing attributes and runs faster than real time', () => {
  const a = childNamed(attemptSpan(jobs.batch.id), 'session local').attributes;
  expect(Object.keys(a).filter((k) => k.startsWith('transcription.pacing.'))).toEqual([]);
  expect(a['transcription.rtf'] as number).toBeLessThan(0.9);
});

it('a failed job: the attempt span says failed, with the stable code as error.type, as do the spans that failed', () => {
  expect(jobs.bad.outcome).toMatchObject({ state: 'failed', reason: expect.stringMatching(/^DECODE_FAILED: /) });
  const root = attemptSpan(jobs.bad.id);
  expect(root.status.code).toBe(SpanStatusCode.ERROR);
  expect(root.status.message).toBe(jobs.bad.outcome.state === 'failed' ? jobs.bad.outcome.reason : undefined);
  expect(root.attributes).toMatchObject({ 'scribe.outcome': 'failed', 'error.type': 'DECODE_FAILED' });
  expect(root.events.some((e) => e.name === 'exception')).toBe(true);
  expect(enqueueSpanLinkedFrom(root)).toBeDefined();
  const session = childNamed(root, 'session local');
  expect(session.attributes['error.type']).toBe('DECODE_FAILED');
  expect(childNamed(session, 'decode').attributes['error.type']).toBe('DECODE_FAILED');
  expect(childrenOf(root).filter((s) => s.name === 's3.put')).toEqual([]);
});
