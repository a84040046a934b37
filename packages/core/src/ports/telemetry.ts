export type AttrValue = string | number | boolean | string[] | number[];
export type Attrs = Record<string, AttrValue | undefined>;

export interface SpanHandle {
  setAttributes(attrs: Attrs): void;
  addEvent(name: string, attrs?: Attrs): void;
  recordError(err: unknown, code?: string): void;
  end(): void;
}

/** A propagated trace context (W3C `traceparent`/`tracestate` headers), as carried in job data. */
export type TraceCarrier = Record<string, string>;

export type SpanKindName = 'internal' | 'producer' | 'consumer' | 'client' | 'server';

export interface SpanOptions {
  kind?: SpanKindName;
  /** Start a new trace instead of a child of the current span. */
  root?: boolean;
  /** Contexts this span is causally linked to without being their child (e.g. a job's enqueue span). */
  links?: TraceCarrier[];
  /**
   * Instrumented libraries record nothing inside `fn` (the span itself is kept). For calls into shared
   * machinery whose background work outlives the call and serves other jobs (the limiter's pump and
   * lease heartbeats), which would otherwise be attributed to whichever job happened to start it.
   */
  suppressInner?: boolean;
}

/** Telemetry port: the worker and producer speak this; the OTel adapter implements it. */
export interface Telemetry {
  /**
   * Run `fn` inside a new span (a child of the current one unless `opts.root`). The span ends when
   * `fn` settles; a throw is recorded on it (with the ScribeError code as `error.type`) and rethrown.
   */
  span<T>(name: string, attrs: Attrs, fn: (span: SpanHandle) => Promise<T>, opts?: SpanOptions): Promise<T>;
  /** Start a child span of the current one without making it current; the caller ends it. */
  startSpan(name: string, attrs?: Attrs, opts?: SpanOptions): SpanHandle;
  /** The current span's context as W3C headers, to carry in a message; `{}` when tracing is off. */
  inject(): TraceCarrier;
}

const noopSpan: SpanHandle = { setAttributes() {}, addEvent() {}, recordError() {}, end() {} };

export const noopTelemetry: Telemetry = {
  span: (_name, _attrs, fn) => fn(noopSpan),
  startSpan: () => noopSpan,
  inject: () => ({}),
};
