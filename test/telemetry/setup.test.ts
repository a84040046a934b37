/**
 * When tracing is on, and that "off" means off: no SDK loaded, a no-op tracer, no trace context in
 * the job data. The entry points' instrumentation modules are checked as real processes.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { otelTelemetry } from '@scribe-fleet/core/adapters/otel/otel-telemetry';
import { stripQuery, tracesEndpoint, tracingEnabled } from '@scribe-fleet/core/adapters/otel/setup';

const run = promisify(execFile);

it('reads the endpoint from OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (as is) or OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces)', () => {
  expect(tracesEndpoint({})).toBeUndefined();
  expect(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' })).toBeUndefined();
  expect(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318/' })).toBe('http://jaeger:4318/v1/traces');
  expect(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/custom' })).toBe('http://b:4318/custom');
});

it('is on only with an endpoint, and not when OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none', () => {
  const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318' };
  expect(tracingEnabled({})).toBe(false);
  expect(tracingEnabled(endpoint)).toBe(true);
  expect(tracingEnabled({ ...endpoint, OTEL_SDK_DISABLED: 'true' })).toBe(false);
  expect(tracingEnabled({ ...endpoint, OTEL_SDK_DISABLED: 'false' })).toBe(true);
  expect(tracingEnabled({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' })).toBe(false);
});

it('strips query strings and fragments from URLs', () => {
  expect(stripQuery('https://b.s3.amazonaws.com/k.wav?X-Amz-Signature=abc&X-Amz-Credential=AKIA')).toBe('https://b.s3.amazonaws.com/k.wav');
  expect(stripQuery('wss://api.example/v1/listen?token=secret#x')).toBe('wss://api.example/v1/listen');
  expect(stripQuery('http://h/p')).toBe('http://h/p');
});

it('without the SDK the adapter is a no-op: spans run their function, inject gives no context', async () => {
  const t = otelTelemetry();
  expect(await t.span('x', { a: 1 }, async (s) => (s.addEvent('e'), 42))).toBe(42);
  await t.span('outer', {}, async () => expect(t.inject()).toEqual({}));
  await expect(t.span('boom', {}, async () => Promise.reject(new Error('kept')))).rejects.toThrow('kept');
});

describe.each([
  ['worker', join(__dirname, '..', '..', 'apps', 'worker', 'dist', 'instrumentation.js')],
  ['producer', join(__dirname, '..', '..', 'apps', 'producer', 'dist', 'instrumentation.js')],
])('the %s entry point', (_name, module) => {
  // Loads the instrumentation module as the entry point does, then reports what it set up.
  const probe = `
    require(${JSON.stringify(module)});
    const api = require('@opentelemetry/api');
    const loaded = Object.keys(require.cache).some((k) => k.includes('@opentelemetry/sdk-node'));
    const span = api.trace.getTracer('probe').startSpan('probe');
    process.stdout.write(JSON.stringify({ loaded, recording: span.isRecording() }));
    process.exit(0);`;
  const env = (extra: Record<string, string>) => ({ PATH: process.env.PATH ?? '', ...extra });

  it('loads nothing and traces nothing when no endpoint is configured', async () => {
    const { stdout } = await run(process.execPath, ['-e', probe], { env: env({}), cwd: join(__dirname, '..', '..') });
    expect(JSON.parse(stdout)).toEqual({ loaded: false, recording: false });
  });

  it('starts the SDK when OTEL_EXPORTER_OTLP_ENDPOINT is set (and not when OTEL_SDK_DISABLED=true)', async () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' };
    let { stdout } = await run(process.execPath, ['-e', probe], { env: env(endpoint), cwd: join(__dirname, '..', '..') });
    expect(JSON.parse(stdout)).toEqual({ loaded: true, recording: true });
    ({ stdout } = await run(process.execPath, ['-e', probe], { env: env({ ...endpoint, OTEL_SDK_DISABLED: 'true' }), cwd: join(__dirname, '..', '..') }));
    expect(JSON.parse(stdout)).toEqual({ loaded: false, recording: false });
  });
});
