/**
 * The Telemetry port over the OpenTelemetry API. It only speaks `@opentelemetry/api`: with no SDK
 * registered (telemetry off, see ./setup.ts) every call is a no-op, so it is safe as the default.
 */
import {
  context,
  isSpanContextValid,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Link,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import type { Attrs, SpanHandle, SpanKindName, SpanOptions, Telemetry, TraceCarrier } from '../../ports/telemetry';

const KINDS: Record<SpanKindName, SpanKind> = {
  internal: SpanKind.INTERNAL,
  producer: SpanKind.PRODUCER,
  consumer: SpanKind.CONSUMER,
  client: SpanKind.CLIENT,
  server: SpanKind.SERVER,
};

/** Drop undefined values (the port allows them, OTel does not). */
export function toAttributes(attrs: Attrs | undefined): Attributes {
  const out: Attributes = {};
  for (const [k, v] of Object.entries(attrs ?? {})) if (v !== undefined) out[k] = v;
  return out;
}

/** The stable code of an error: a ScribeError's `code`, else the error's name. */
function errorType(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Z][A-Z0-9_]+$/.test(code)) return code;
  return err instanceof Error ? err.name : '_OTHER';
}

/** Record `err` on `span`: an `exception` event, status ERROR with `CODE: message`, `error.type` = code. */
export function recordError(span: Span, err: unknown, code?: string): void {
  const type = code ?? errorType(err);
  const message = err instanceof Error ? err.message : String(err);
  span.recordException(err instanceof Error ? err : { name: type, message });
  span.setAttribute('error.type', type);
  // As `failedReason`: `CODE: message` (BullMQ-bound errors already carry it).
  span.setStatus({ code: SpanStatusCode.ERROR, message: message.startsWith(`${type}: `) ? message : `${type}: ${message}` });
}

function handleOf(span: Span): SpanHandle {
  let ended = false;
  return {
    setAttributes: (attrs) => void span.setAttributes(toAttributes(attrs)),
    addEvent: (name, attrs) => void span.addEvent(name, toAttributes(attrs)),
    recordError: (err, code) => recordError(span, err, code),
    end: () => {
      if (!ended) span.end();
      ended = true;
    },
  };
}

/** Links to the span contexts carried in `carriers` (invalid or empty carriers are skipped). */
function linksOf(carriers: TraceCarrier[] | undefined): Link[] {
  const links: Link[] = [];
  for (const carrier of carriers ?? []) {
    const sc = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, carrier));
    if (sc && isSpanContextValid(sc)) links.push({ context: sc });
  }
  return links;
}

export interface OtelTelemetryOptions {
  /** Instrumentation scope name (default `scribe-fleet`). */
  name?: string;
  version?: string;
}

export function otelTelemetry(opts: OtelTelemetryOptions = {}): Telemetry {
  // A ProxyTracer: it delegates to whatever provider is registered when a span starts, so an
  // adapter made before the SDK starts still traces.
  const tracer: Tracer = trace.getTracer(opts.name ?? 'scribe-fleet', opts.version);

  const start = (name: string, attrs: Attrs | undefined, opts: SpanOptions) => {
    const parent = opts.root ? ROOT_CONTEXT : context.active();
    const span = tracer.startSpan(
      name,
      { kind: KINDS[opts.kind ?? 'internal'], attributes: toAttributes(attrs), links: linksOf(opts.links), root: Boolean(opts.root) },
      parent,
    );
    return { span, parent };
  };

  return {
    async span(name, attrs, fn, opts = {}) {
      const { span, parent } = start(name, attrs, opts);
      let ctx = trace.setSpan(parent, span);
      if (opts.suppressInner) ctx = suppressTracing(ctx);
      const handle = handleOf(span);
      try {
        return await context.with(ctx, () => fn(handle));
      } catch (e) {
        recordError(span, e);
        throw e;
      } finally {
        handle.end();
      }
    },
    startSpan(name, attrs, opts = {}) {
      return handleOf(start(name, attrs, opts).span);
    },
    inject() {
      const carrier: TraceCarrier = {};
      propagation.inject(context.active(), carrier);
      return carrier;
    },
  };
}
