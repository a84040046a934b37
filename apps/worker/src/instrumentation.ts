/**
 * OpenTelemetry for the worker process: the FIRST import of main.ts, so the http, ioredis and
 * aws-sdk instrumentations are in place before anything loads those modules. Off (nothing loaded,
 * no-op tracer) unless an OTLP endpoint is configured; see README "Traces".
 */
import { startTelemetry } from '@scribe-fleet/core/adapters/otel/setup';

/** Flushes pending spans; main.ts calls it after the worker has closed. */
export const shutdownTelemetry = startTelemetry({ serviceName: 'scribe-worker' });
