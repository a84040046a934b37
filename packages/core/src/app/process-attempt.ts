import { randomUUID } from 'node:crypto';
import type { JobOutcome } from '../domain/attempt';
import { capBucketKey, capBucketOf } from '../domain/caps';
import { resumeTranscript } from '../domain/checkpoint';
import type { Clock } from '../domain/clock';
import { JobCancelledError, JobLockLostError, ScribeError, SessionStalledError, toScribeError, UnknownProviderError } from '../domain/errors';
import { CONTENT_TYPES, render } from '../domain/formatters';
import type { JobResult } from '../domain/job-result';
import { outputKey, parseJobSpec, type JobSpec } from '../domain/job-spec';
import { fromDeepgramJson, transcriptWarnings, type DeepgramStyleJson } from '../domain/transcript';
import type { AudioInputFactory, StorageAudioInput } from '../ports/audio-input';
import type { Limiter } from '../ports/limiter';
import { audioFormOf, type AudioForm, type Provider, type ProviderResult, type SessionEvent } from '../ports/provider';
import type { Storage } from '../ports/storage';
import type { SpanHandle, Telemetry } from '../ports/telemetry';
import { CheckpointRecorder, loadCheckpoint, resumedAudio } from './checkpoints';
import { assertSpecAllowed, assertSpecOptions } from './validate';
import { watchedAudio } from './watched-audio';
import { IdleWatchdog } from '../domain/watchdog';

/** Everything the processor touches, injected so tests can swap parts (Temporal-style factory). */
export interface ProcessorDeps {
  storage: Storage;
  /**
   * The audio of a job's source object over `storage` (the worker wires the S3/ffmpeg one,
   * `storageAudioInput`): the application layer decodes nothing itself.
   */
  audioInput: AudioInputFactory;
  providers: Partial<Record<string, Provider>>;
  limiter: Limiter;
  clock: Clock;
  telemetry: Telemetry;
  spoolDir?: string;
  onSessionEvent?: (spec: JobSpec, e: SessionEvent) => void;
  /** Every attempt's end (worker.ts): metrics. */
  onJobEnd?: (o: JobOutcome) => void;
  /** Stream checkpoints: write at most this often (0 = off; default 30 s). */
  checkpointIntervalMs?: number;
  /** Provider 429s retried inside one attempt before the job is re-scheduled (default 8). */
  maxRateLimitRetries?: number;
  /** Storage errors are retried inside the attempt for this long (STORAGE_RETRY_MS; default 180 s). */
  storageRetryMs?: number;
  /**
   * A session with no progress (no audio read, no provider event) for this long is aborted with
   * SESSION_STALLED (retryable) and its slot given back (SESSION_STALL_MS; absent or 0: no watchdog).
   */
  sessionStallMs?: number;
  /** Truncation check of decoded audio against the container's declared duration. */
  truncation?: { tolerance: number; allow: boolean };
  /**
   * The worker's own S3_ALLOWED_BUCKETS (empty or absent: any bucket). A spec's source and output
   * buckets are checked against it before any storage call: that a spec is in Redis does not prove
   * its producer was allowed to make it.
   */
  allowedBuckets?: readonly string[];
}

/**
 * Run a storage operation, retrying STORAGE_UNAVAILABLE with capped exponential backoff (0.5 s
 * doubling to 10 s, with jitter) until `budgetMs` has passed: a storage outage of a minute or two is
 * waited out inside the attempt instead of failing it (and a transcript in hand is never thrown away).
 */
export async function withStorageRetry<T>(clock: Clock, budgetMs: number, signal: AbortSignal | undefined, fn: () => Promise<T>, random = Math.random): Promise<T> {
  const until = clock.now() + budgetMs;
  for (let n = 0; ; n += 1) {
    try {
      return await fn();
    } catch (e) {
      const err = toScribeError(e);
      if (err.code !== 'STORAGE_UNAVAILABLE' || signal?.aborted) throw e;
      const wait = Math.min(10_000, 500 * 2 ** n) * (0.75 + 0.5 * random());
      if (clock.now() + wait > until) throw e;
      await clock.sleepUntil(clock.now() + wait, signal);
    }
  }
}

/** Wait before retrying a 429: at least the provider's Retry-After, else capped exponential, with jitter. */
export function rateLimitBackoffMs(retryAfterMs: number | undefined, n: number, random = Math.random): number {
  if (retryAfterMs !== undefined) return retryAfterMs * (1 + 0.25 * random());
  return Math.min(30_000, 250 * 2 ** (n - 1)) * (0.5 + 0.5 * random());
}

export interface JobContext {
  id: string;
  attempt: number;
  signal: AbortSignal;
  progress?: (p: Record<string, unknown>) => Promise<void>;
  /** The attempt holds a cap slot and its provider session starts now. */
  onSessionStart?: () => void;
  /**
   * Whether this worker still holds the job (renewing its lock as it asks). Asked right before the
   * outputs are written: an attempt whose job went to another worker meanwhile (its lock expired while
   * the process was starved or cut off from Redis) writes nothing, so a job's outputs are written by
   * one attempt only.
   */
  owned?: () => Promise<boolean>;
}

/**
 * One attempt of one job: fetch → decode → transcribe → write outputs. Throws ScribeErrors; the
 * BullMQ glue (worker.ts) maps their kind to retry / rate-limit / fail.
 */
export function createProcessor(deps: ProcessorDeps) {
  return async function process(data: unknown, ctx: JobContext): Promise<JobResult> {
    const spec = parseJobSpec(data);
    // Before anything touches storage: refused specs fail at once (BUCKET_NOT_ALLOWED,
    // INVALID_S3_URL or UNSUPPORTED_OPTION are unrecoverable), with no GET of the source and no
    // output written.
    assertSpecAllowed(deps.allowedBuckets ?? [], spec);
    assertSpecOptions(spec);
    const provider = deps.providers[spec.provider];
    if (!provider) throw new UnknownProviderError(`provider ${spec.provider} is not configured on this worker (missing API key?)`);
    const audio = deps.audioInput(deps.storage, spec.source, {
      telemetry: deps.telemetry,
      ...(deps.spoolDir ? { spoolDir: deps.spoolDir } : {}),
      ...(deps.truncation ? { truncationTolerance: deps.truncation.tolerance, allowTruncated: deps.truncation.allow } : {}),
    });
    const bucket = capBucketKey(capBucketOf(spec));
    const storageRetry = <T>(fn: () => Promise<T>) => withStorageRetry(deps.clock, deps.storageRetryMs ?? 180_000, ctx.signal, fn);
    // A re-run of a job whose outputs are already complete (a crash or a Redis error after the
    // outputs were written) returns them instead of transcribing again.
    if (!spec.force) {
      const done = await storageRetry(() => existingResult(spec, deps.storage));
      if (done) return done;
    }
    try {
      // Everything that needs no provider slot happens before taking one (spooling mp4/m4a inputs).
      // Streams (and the local recogniser) read decoded PCM; batch providers say what they read.
      const form = audioFormOf(provider, spec.mode);
      if (form === 'pcm') await deps.telemetry.span('audio.prepare', {}, () => audio.prepare(ctx.signal));
      // A paced stream resumes from its checkpoint, if an earlier attempt left one.
      const cpInterval = deps.checkpointIntervalMs ?? 30_000;
      const resume = spec.mode === 'stream' && cpInterval > 0 ? await storageRetry(() => loadCheckpoint(deps.storage, spec)) : null;
      const recorder = spec.mode === 'stream' && cpInterval > 0 ? new CheckpointRecorder(deps.storage, spec, deps.clock, cpInterval, resume) : null;
      const input = resume ? resumedAudio(audio, resume.offsetSeconds) : audio;
      const session = await transcribeWithinCap(spec, bucket, input, form, deps, ctx, (e) => {
        if (e.type === 'session:final' && e.segment) recorder?.onFinal(e.segment, e.channels);
      }, resume?.offsetSeconds).then(
        (r) => recorder?.settled().then(() => r) ?? r,
        // A session that failed after finals arrived saves them first: the retry re-sends only the tail.
        async (e: unknown) => {
          await recorder?.saveNow();
          throw e;
        },
      );
      const transcript = resume ? resumeTranscript(resume, session.transcript) : session.transcript;
      const warnings = transcriptWarnings(transcript, audio.warnings ?? []);
      const result = { ...session, transcript: warnings.length ? { ...transcript, warnings } : transcript };
      if (ctx.owned && !(await ctx.owned())) throw new JobLockLostError(`job ${ctx.id} is no longer this worker's (its lock expired and another worker took it): nothing written`);
      // The transcript is in hand: storage trouble from here on is waited out, never re-transcribed.
      const written = await writeOutputs(spec, result, audio.sha256 ?? '', deps, storageRetry, `${ctx.id}/${ctx.attempt}/${randomUUID()}`);
      await recorder?.clear();
      return warnings.length ? { ...written, warnings } : written;
    } finally {
      await audio.dispose();
    }
  };
}

/** Take a slot of the job's cap bucket, run the session, give the slot back. 429s: report, back off, retry. */
async function transcribeWithinCap(
  spec: JobSpec,
  bucket: string,
  audio: StorageAudioInput,
  form: AudioForm | undefined,
  deps: ProcessorDeps,
  ctx: JobContext,
  onEvent?: (e: SessionEvent) => void,
  resumedFrom?: number,
): Promise<ProviderResult> {
  const provider = deps.providers[spec.provider]!;
  const maxRetries = deps.maxRateLimitRetries ?? 8;
  for (let rateLimited = 0; ; ) {
    let retryAfterMs: number | undefined;
    // Open the object's GET while waiting for the slot, so the session starts at once when it comes.
    if (form === 'original') audio.prefetchOriginal();
    // The limiter's own Redis traffic (a pump shared by every waiter, lease heartbeats) outlives this
    // call and serves other jobs too, so it is kept out of this job's trace (suppressInner).
    const lease = await deps.telemetry.span('slot.wait', { 'scribe.cap.bucket': bucket, 'scribe.rate_limit_retries': rateLimited }, () => deps.limiter.acquire(bucket, ctx.signal), {
      suppressInner: true,
    });
    const watchdog = deps.sessionStallMs
      ? new IdleWatchdog(deps.clock, deps.sessionStallMs, (ms) => new SessionStalledError(`${spec.provider} ${spec.mode} session made no progress (no audio read, no provider message) for ${Math.round(ms / 1000)} s: aborted`, { details: { idleMs: Math.round(ms) } }))
      : undefined;
    try {
      ctx.onSessionStart?.();
      const signals = [ctx.signal, lease.signal, watchdog?.signal].filter((s): s is AbortSignal => s !== undefined);
      const signal = signals.length === 1 ? ctx.signal : AbortSignal.any(signals);
      const input = watchdog ? watchedAudio(audio, () => watchdog.touch()) : audio;
      return await deps.telemetry.span(
        `session ${spec.provider}`,
        {
          'transcription.provider': spec.provider,
          'transcription.model': spec.model,
          'transcription.mode': spec.mode,
          'transcription.account': spec.account,
          'transcription.resumed_from_s': resumedFrom,
        },
        async (span) => {
          const started = deps.clock.now();
          const r = await provider.transcribe(
            { mode: spec.mode, model: spec.model, options: spec.options, audio: input, ...(spec.batchId ? { tag: spec.batchId } : {}) },
            {
              signal,
              clock: deps.clock,
              onEvent: (e) => {
                watchdog?.touch();
                recordSessionEvent(span, e);
                onEvent?.(e);
                deps.onSessionEvent?.(spec, e);
              },
            },
          );
          span.setAttributes(sessionAttributes(r, deps.clock.now() - started));
          return r;
        },
        { kind: 'client' },
      );
    } catch (e) {
      if (ctx.signal.aborted) throw new JobCancelledError('job was cancelled');
      if (lease.signal?.aborted) throw lease.signal.reason;
      if (watchdog?.signal.aborted) throw watchdog.signal.reason;
      if (!(e instanceof ScribeError) || e.kind !== 'rate_limit' || ++rateLimited > maxRetries) throw e;
      deps.limiter.reportRateLimited?.(bucket, e.retryAfterMs);
      retryAfterMs = e.retryAfterMs;
    } finally {
      watchdog?.stop();
      await lease.release();
    }
    const wait = rateLimitBackoffMs(retryAfterMs, rateLimited);
    await deps.clock.sleepUntil(deps.clock.now() + wait, ctx.signal);
  }
}

/** Session events as span events; per-chunk lateness is summarised at the end (pacing stats) instead. */
function recordSessionEvent(span: SpanHandle, e: SessionEvent): void {
  switch (e.type) {
    case 'session:open':
      span.addEvent('session.open');
      if (e.requestId) span.setAttributes({ 'transcription.request_id': e.requestId });
      break;
    case 'session:first-result':
      span.addEvent('session.first_result', { 'transcription.audio_seconds': e.audioSeconds });
      break;
    case 'session:final':
      span.addEvent('session.final', { 'transcription.final.index': e.index, 'transcription.final.start': e.start, 'transcription.final.end': e.end });
      break;
    case 'session:reconnect':
      span.addEvent('session.reconnect', { 'transcription.reconnect.attempt': e.attempt, 'transcription.reconnect.reason': e.reason });
      break;
    case 'session:closed':
      span.addEvent('session.closed', { 'transcription.close.code': e.code, 'transcription.close.reason': e.reason });
      break;
    case 'session:chunk-lateness':
      break;
  }
}

/** What a finished session reports on its span: audio, bytes and chunks sent, pacing, results. */
function sessionAttributes(r: ProviderResult, elapsedMs: number) {
  const { stats } = r;
  const seconds = r.transcript.duration;
  return {
    'transcription.request_id': stats.requestId,
    'transcription.audio_seconds': seconds,
    'transcription.bytes_sent': stats.bytesSent,
    'transcription.chunks_sent': stats.chunksSent,
    'transcription.final_results': stats.finalResults,
    'transcription.reconnects': stats.reconnects,
    // Wall time of the session over the audio's length (a paced stream is ≥ 1).
    'transcription.rtf': seconds > 0 ? elapsedMs / 1000 / seconds : undefined,
    'transcription.pacing.lateness_p50_ms': stats.pacing?.latenessP50Ms,
    'transcription.pacing.lateness_p99_ms': stats.pacing?.latenessP99Ms,
    'transcription.pacing.lateness_max_ms': stats.pacing?.latenessMaxMs,
    'transcription.pacing.drift_at_end_ms': stats.pacing?.driftAtEndMs,
    'transcription.pacing.early_sends': stats.pacing?.earlySends,
  };
}

/** The result of this very job from its outputs, if its JSON (written last) exists and matches the job. */
async function existingResult(spec: JobSpec, storage: Storage): Promise<JobResult | null> {
  const jsonKey = outputKey(spec, 'json');
  if (!(await storage.head(spec.output.bucket, jsonKey))) return null;
  const { body } = await storage.get(spec.output.bucket, jsonKey);
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c as Buffer);
  let doc: DeepgramStyleJson;
  try {
    doc = JSON.parse(Buffer.concat(parts).toString('utf8')) as DeepgramStyleJson;
  } catch {
    return null;
  }
  const m = doc.metadata;
  if (m?.source?.etag !== spec.source.etag || m.provider !== spec.provider || m.models?.[0] !== `${spec.provider}:${spec.model}`) return null;
  const t = fromDeepgramJson(doc);
  return {
    outputs: Object.fromEntries(spec.output.formats.map((f) => [f, outputKey(spec, f)])),
    bucket: spec.output.bucket,
    duration: t.duration,
    sha256: m.sha256,
    requestId: t.requestId,
    words: t.segments.reduce((n, s) => n + s.words.length, 0),
    finalResults: t.segments.length,
    provider: spec.provider,
    model: spec.model,
    mode: spec.mode,
  };
}

async function writeOutputs(
  spec: JobSpec,
  result: ProviderResult,
  sha256: string,
  deps: ProcessorDeps,
  storageRetry: <T>(fn: () => Promise<T>) => Promise<T>,
  /** Which attempt wrote the outputs (object metadata `scribe-attempt`), so a double write is visible. */
  attemptTag: string,
): Promise<JobResult> {
  const meta = {
    sha256,
    created: new Date().toISOString(),
    source: { bucket: spec.source.bucket, key: spec.source.key, etag: spec.source.etag, ...(spec.source.versionId ? { versionId: spec.source.versionId } : {}) },
  };
  // JSON is written last: its presence marks a complete set of outputs. The others go up together
  // (they are independent), so a job pays two PUT latencies, not one per format.
  const outputs: Record<string, string> = {};
  const putOne = async (format: (typeof spec.output.formats)[number]) => {
    const key = outputKey(spec, format);
    const body = render(result.transcript, format, meta);
    await deps.telemetry.span('s3.put', { 'aws.s3.bucket': spec.output.bucket, 'scribe.output.format': format, 'scribe.output.bytes': Buffer.byteLength(body) }, () =>
      storageRetry(() => deps.storage.put(spec.output.bucket, key, body, { contentType: CONTENT_TYPES[format], metadata: { 'scribe-attempt': attemptTag } })),
    );
    outputs[format] = key;
  };
  try {
    const settled = await Promise.allSettled(spec.output.formats.filter((f) => f !== 'json').map(putOne));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    if (spec.output.formats.includes('json')) await putOne('json');
  } catch (e) {
    // No partial set is left behind (a .txt without its .json): what this attempt wrote goes again.
    for (const key of Object.values(outputs)) await deps.storage.delete(spec.output.bucket, key).catch(() => undefined);
    throw e;
  }
  return {
    outputs,
    bucket: spec.output.bucket,
    duration: result.transcript.duration,
    sha256,
    requestId: result.stats.requestId,
    words: result.transcript.segments.reduce((n, s) => n + s.words.length, 0),
    finalResults: result.stats.finalResults,
    provider: spec.provider,
    model: spec.model,
    mode: spec.mode,
  };
}
