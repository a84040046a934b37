import {
  CONTENT_TYPES,
  JobCancelledError,
  outputKey,
  parseJobSpec,
  render,
  toScribeError,
  UnknownProviderError,
  type Clock,
  type JobSpec,
  type Limiter,
  type Provider,
  type ProviderResult,
  type SessionEvent,
  type Storage,
  type Telemetry,
} from '@scribe-fleet/core';
import { storageAudioInput } from '@scribe-fleet/core/adapters/audio-input';
import type { JobResult } from '@scribe-fleet/core/adapters/queue';

/** Everything the processor touches, injected so tests can swap parts (Temporal-style factory). */
export interface ProcessorDeps {
  storage: Storage;
  providers: Partial<Record<string, Provider>>;
  limiter: Limiter;
  clock: Clock;
  telemetry: Telemetry;
  spoolDir?: string;
  /** Cap bucket of a job; the cap module supplies the real one. */
  capBucket?: (spec: JobSpec) => string;
  onSessionEvent?: (spec: JobSpec, e: SessionEvent) => void;
}

export interface JobContext {
  id: string;
  attempt: number;
  signal: AbortSignal;
  progress?: (p: Record<string, unknown>) => Promise<void>;
}

/**
 * One attempt of one job: fetch → decode → transcribe → write outputs. Throws ScribeErrors; the
 * BullMQ glue (worker.ts) maps their kind to retry / rate-limit / fail.
 */
export function createProcessor(deps: ProcessorDeps) {
  return async function process(data: unknown, ctx: JobContext): Promise<JobResult> {
    const spec = parseJobSpec(data);
    const provider = deps.providers[spec.provider];
    if (!provider) throw new UnknownProviderError(`provider ${spec.provider} is not configured on this worker`);
    const audio = storageAudioInput(deps.storage, spec.source, deps.spoolDir ? { spoolDir: deps.spoolDir } : {});
    const bucket = deps.capBucket?.(spec) ?? `${spec.provider}:${spec.account}:${spec.model}:${spec.mode}`;

    const result = await deps.telemetry.span('slot.wait', { 'scribe.cap.bucket': bucket }, async () => deps.limiter.acquire(bucket, ctx.signal)).then(
      async (lease) => {
        try {
          return await deps.telemetry.span(
            `session ${spec.provider}`,
            { 'transcription.provider': spec.provider, 'transcription.model': spec.model, 'transcription.mode': spec.mode },
            async (span) => {
              const r: ProviderResult = await provider.transcribe(
                { mode: spec.mode, model: spec.model, options: spec.options, audio },
                { signal: ctx.signal, clock: deps.clock, onEvent: (e) => deps.onSessionEvent?.(spec, e) },
              );
              span.setAttributes({ 'transcription.request_id': r.stats.requestId, 'transcription.audio_seconds': r.transcript.duration });
              return r;
            },
          );
        } finally {
          await lease.release();
        }
      },
    );
    if (ctx.signal.aborted) throw new JobCancelledError('job was cancelled');

    const sha256 = audio.sha256 ?? '';
    const meta = {
      sha256,
      created: new Date().toISOString(),
      source: { bucket: spec.source.bucket, key: spec.source.key, etag: spec.source.etag, ...(spec.source.versionId ? { versionId: spec.source.versionId } : {}) },
    };
    // JSON is written last: its presence marks a complete set of outputs.
    const formats = [...spec.output.formats].sort((a, b) => (a === 'json' ? 1 : b === 'json' ? -1 : 0));
    const outputs: Record<string, string> = {};
    for (const format of formats) {
      const key = outputKey(spec, format);
      await deps.telemetry.span('s3.put', { 'scribe.output.format': format }, () =>
        deps.storage.put(spec.output.bucket, key, render(result.transcript, format, meta), { contentType: CONTENT_TYPES[format] }),
      );
      outputs[format] = key;
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
  };
}

export { toScribeError };
