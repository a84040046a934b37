/**
 * OpenTelemetry for the `scribe` CLI and the HTTP API: the FIRST import of cli.ts and api/main.ts,
 * so the http, ioredis and aws-sdk instrumentations are in place before anything loads those
 * modules. Off (nothing loaded, no-op tracer) unless an OTLP endpoint is configured; see README
 * "Traces".
 */
import { startTelemetry } from '@scribe-fleet/core/adapters/otel/setup';

/** Flushes pending spans; the entry points call it before the process exits. */
export const shutdownTelemetry = startTelemetry({ serviceName: 'scribe-producer' });
