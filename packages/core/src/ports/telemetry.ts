export type AttrValue = string | number | boolean | string[] | number[];
export type Attrs = Record<string, AttrValue | undefined>;

export interface SpanHandle {
  setAttributes(attrs: Attrs): void;
  addEvent(name: string, attrs?: Attrs): void;
  recordError(err: unknown, code?: string): void;
  end(): void;
}

/** Telemetry port: the worker and producer speak this; the OTel adapter implements it. */
export interface Telemetry {
  /** Run `fn` inside a child span of the current one. */
  span<T>(name: string, attrs: Attrs, fn: (span: SpanHandle) => Promise<T>): Promise<T>;
}

const noopSpan: SpanHandle = { setAttributes() {}, addEvent() {}, recordError() {}, end() {} };

export const noopTelemetry: Telemetry = {
  span: (_name, _attrs, fn) => fn(noopSpan),
};
