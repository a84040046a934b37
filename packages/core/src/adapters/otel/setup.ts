/**
 * OpenTelemetry SDK setup shared by the worker and the producer. Each app's `instrumentation.ts`
 * calls `startTelemetry` and is the first import of its entry point, so the instrumentations hook
 * `http`, `ioredis` and `@aws-sdk/*` before anything loads them (CommonJS keeps import order).
 *
 * Configured by the standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (`…/v1/traces` is appended) or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is), `OTEL_EXPORTER_OTLP_HEADERS`,
 * `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`,
 * `OTEL_SDK_DISABLED`. Traces only, over OTLP/HTTP (JSON). With no endpoint, with
 * `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` nothing is loaded or started and the
 * OpenTelemetry API stays a no-op.
 *
 * Keep this module free of imports that load instrumented libraries (it must not pull in the core
 * index): the SDK is required lazily, only when tracing is on.
 */
import type { RequestOptions } from 'node:http';
import type { SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';

export interface StartTelemetryOptions {
  /** `service.name` unless `OTEL_SERVICE_NAME` (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`) says otherwise. */
  serviceName: string;
  /**
   * Span processors to use instead of the OTLP exporter (tests: an in-memory exporter). Given, they
   * turn tracing on whatever the environment says.
   */
  spanProcessors?: SpanProcessor[];
  /** Register the http, ioredis and aws-sdk instrumentations (default true). */
  instrumentations?: boolean;
}

export type ShutdownTelemetry = () => Promise<void>;

/** Events a span keeps unless OTEL_SPAN_EVENT_COUNT_LIMIT says otherwise (one per final result: hours of speech). */
export const SESSION_EVENT_LIMIT = 2000;

const nonEmpty = (v: string | undefined) => (v && v.trim() !== '' ? v.trim() : undefined);

/** The OTLP traces endpoint the environment configures, if any. */
export function tracesEndpoint(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const specific = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  if (specific) return specific;
  const base = nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  return base ? `${base.replace(/\/+$/, '')}/v1/traces` : undefined;
}

/** Tracing is on when an exporter endpoint is configured and the SDK is not disabled. */
export function tracingEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  if (/^true$/i.test(env.OTEL_SDK_DISABLED?.trim() ?? '')) return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((s) => s.trim());
  if (exporters.includes('none')) return false;
  return tracesEndpoint(env) !== undefined;
}

/** `url` without its query string and fragment (presigned URLs carry their signature there). */
export function stripQuery(url: string): string {
  const i = url.search(/[?#]/);
  return i < 0 ? url : url.slice(0, i);
}

/** The URL of an outgoing request without its query string, from the parsed request options. */
function outgoingUrl(o: RequestOptions): string {
  const protocol = o.protocol ?? 'http:';
  const host = o.hostname ?? o.host ?? 'localhost';
  const defaultPort = protocol === 'https:' ? 443 : 80;
  const port = o.port && Number(o.port) !== defaultPort ? `:${o.port}` : '';
  const bracketed = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${protocol}//${bracketed}${port}${stripQuery(o.path ?? '/')}`;
}

/**
 * The instrumentations, configured so no secret reaches a span: URLs lose their query strings
 * (presigned URL signatures, tokens some providers accept as query parameters), Redis commands are
 * recorded by name only (their arguments carry job data and, for AUTH, the password), no headers are
 * captured, and only outgoing requests made inside one of our spans are traced.
 */
function instrumentations() {
  const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http') as typeof import('@opentelemetry/instrumentation-http');
  const { IORedisInstrumentation } = require('@opentelemetry/instrumentation-ioredis') as typeof import('@opentelemetry/instrumentation-ioredis');
  const { AwsInstrumentation } = require('@opentelemetry/instrumentation-aws-sdk') as typeof import('@opentelemetry/instrumentation-aws-sdk');
  return [
    new HttpInstrumentation({
      // Only outgoing calls: the HTTP API's own requests are not traced (server spans would record
      // query strings and need their own redaction policy).
      disableIncomingRequestInstrumentation: true,
      requireParentforOutgoingSpans: true,
      // Replaces the url.full the instrumentation computed (which keeps the query, only redacting a
      // few known parameter values) before the span starts; it is the only URL attribute of client
      // spans (stable HTTP semconv).
      startOutgoingSpanHook: (req) => ({ 'url.full': outgoingUrl(req) }),
    }),
    new IORedisInstrumentation({
      requireParentSpan: true, // BullMQ's blocking pops and lock renewals between jobs stay untraced
      dbStatementSerializer: (cmdName) => cmdName,
    }),
    new AwsInstrumentation({
      // The aws-sdk spans carry service, operation, bucket, region and request id; no URL, no key.
      // Their HTTP children are kept (retries and connection time show there), query-stripped above.
      suppressInternalInstrumentation: false,
    }),
  ];
}

/**
 * Start the OpenTelemetry SDK for this process if tracing is configured. Returns the shutdown
 * function, which flushes pending spans; call it after the work has stopped (the worker: after
 * `close()` on SIGTERM). When tracing is off, nothing is loaded and the shutdown does nothing.
 */
export function startTelemetry(opts: StartTelemetryOptions): ShutdownTelemetry {
  if (!opts.spanProcessors && !tracingEnabled()) return async () => {};
  const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
  const serviceNameFromEnv = nonEmpty(process.env.OTEL_SERVICE_NAME) ?? /(^|,)\s*service\.name\s*=/.test(process.env.OTEL_RESOURCE_ATTRIBUTES ?? '');
  let exporting: { spanProcessors: SpanProcessor[] } | { traceExporter: SpanExporter };
  if (opts.spanProcessors) exporting = { spanProcessors: opts.spanProcessors };
  else {
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
    // The exporter reads its URL, headers, timeout and compression from OTEL_EXPORTER_OTLP_*; the SDK
    // wraps it in a batch processor configured by OTEL_BSP_*.
    exporting = { traceExporter: new OTLPTraceExporter() };
  }
  const sdk = new NodeSDK({
    ...(serviceNameFromEnv ? {} : { serviceName: opts.serviceName }),
    ...exporting,
    // Traces only: no metric readers or log processors (the SDK would otherwise default to OTLP ones).
    metricReaders: [],
    logRecordProcessors: [],
    // A session span has an event per final result: more than the default 128 on long recordings.
    ...(nonEmpty(process.env.OTEL_SPAN_EVENT_COUNT_LIMIT) ? {} : { spanLimits: { eventCountLimit: SESSION_EVENT_LIMIT } }),
    instrumentations: opts.instrumentations === false ? [] : instrumentations(),
  });
  sdk.start();
  let done: Promise<void> | undefined;
  return () => {
    done ??= sdk.shutdown().catch((e: unknown) => console.error(`[telemetry] flushing traces failed: ${(e as Error).message}`));
    return done;
  };
}
