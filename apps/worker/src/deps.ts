import type { Config, Provider } from '@scribe-fleet/core';
import { otelTelemetry } from '@scribe-fleet/core/adapters/otel/otel-telemetry';
import { limiterFromConfig, type LimiterEvent, type RedisLimiter } from '@scribe-fleet/core/adapters/redis/redis-limiter';
import { createProviders } from '@scribe-fleet/core/adapters/providers/registry';
import { s3StorageFromConfig } from '@scribe-fleet/core/adapters/bootstrap';
import { systemClock } from '@scribe-fleet/core/adapters/system-clock';
import { storageAudioInput } from '@scribe-fleet/core/adapters/s3/audio-input';
import type { ProcessorDeps } from '@scribe-fleet/core/app/process-attempt';
import { instrumentDeps, type WorkerMetrics } from './metrics';

/** The fleet-wide cap semaphore, with caps from configuration (`onEvent`: lease and cap events, for metrics). */
export function redisLimiter(config: Config, onEvent?: (e: LimiterEvent) => void): RedisLimiter {
  return limiterFromConfig(config, onEvent ? { onEvent } : {});
}

/**
 * Production wiring: real storage, real clock, the providers this worker has credentials for, the S3
 * audio input (ffmpeg decoding); with `metrics`, sessions, 429s, limiter events, pacing lateness and
 * attempt ends feed them.
 */
export function createDeps(config: Config, overrides: Partial<ProcessorDeps> = {}, metrics?: WorkerMetrics): ProcessorDeps {
  const providers: Record<string, Provider> = createProviders(config);
  const deps: ProcessorDeps = {
    storage: s3StorageFromConfig(config),
    audioInput: storageAudioInput,
    providers,
    limiter: overrides.limiter ?? redisLimiter(config, metrics?.limiterEvent),
    clock: systemClock,
    // OpenTelemetry API: a no-op unless ./instrumentation.ts (or a test) started the SDK.
    telemetry: otelTelemetry({ name: 'scribe-worker' }),
    checkpointIntervalMs: config.CHECKPOINT_INTERVAL_MS,
    storageRetryMs: config.STORAGE_RETRY_MS,
    sessionStallMs: config.SESSION_STALL_MS,
    truncation: { tolerance: config.TRUNCATION_TOLERANCE, allow: config.ALLOW_TRUNCATED },
    allowedBuckets: config.S3_ALLOWED_BUCKETS,
    ...overrides,
  };
  if (config.SPOOL_DIR && !deps.spoolDir) deps.spoolDir = config.SPOOL_DIR;
  return metrics ? instrumentDeps(deps, metrics) : deps;
}
