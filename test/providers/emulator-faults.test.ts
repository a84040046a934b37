/**
 * The emulator CLI's failure scenarios, as a client sees them on the wire: `--fault SPEC` for each
 * emulator (rate-limit storms, server errors, never-answering, socket drops, an answer before the
 * upload was read), `--service-time-ms`, and the `/_emulator/faults` + `/_emulator/stats` control
 * endpoint switching faults at run time. Every emulator runs as the real CLI child process.
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { rawClient, type RawClient } from './streaming-test-kit';
import { runEmulatorCli as runCli, startEmulatorCli, type EmulatorCli } from '../helpers/emulator-cli';

jest.setTimeout(30_000);
const KEY = 'test-key';

type Cli = EmulatorCli<{ url: string; port: number; wsUrl?: string; baseUrl?: string; endpoint?: string }>;

const running = new Set<Cli>();
afterEach(async () => {
  for (const c of [...running]) await c.stop();
  running.clear();
});

/** The CLI, stopped after the test. */
async function startCli(args: string[]): Promise<Cli> {
  const cli = await startEmulatorCli<Cli['ready']>(args);
  running.add(cli);
  return cli;
}

interface Stats {
  provider: string;
  keys: Record<string, { inFlight: number; maxInFlight: number; sessions: number; refused: number; cap: number | null }>;
  faults: Array<{ spec: string; kind: string; remaining?: number; applied: number }>;
  applied: Record<string, number>;
}

async function stats(cli: Cli): Promise<Stats> {
  const res = await fetch(`${cli.ready.url}/_emulator/stats`);
  expect(res.status).toBe(200);
  return (await res.json()) as Stats;
}

/** Poll the stats until `pred` holds (the emulator updates its counters on socket events). */
async function statsUntil(cli: Cli, pred: (s: Stats) => boolean, timeoutMs = 5000): Promise<Stats> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const s = await stats(cli);
    if (pred(s) || performance.now() > end) return s;
    await sleep(50);
  }
}

async function control(cli: Cli, method: 'POST' | 'DELETE' | 'GET', body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${cli.ready.url}/_emulator/faults`, {
    method,
    ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

// ---- a raw HTTP upload (curl-like) that records when the answer arrived ---------------------------

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Body bytes handed to the kernel when the status line arrived. */
  sentAtAnswer: number;
  /** Body bytes handed to the kernel when the connection ended. */
  sentAtEnd: number;
  total: number;
  /** The socket error that ended the upload, if any (EPIPE / ECONNRESET / write after end). */
  error?: string;
}

/**
 * POST `total` body bytes (zeros, after `prefix`) with Content-Length, as fast as the socket takes
 * them, reading the answer concurrently. Resolves when the connection is gone.
 */
function rawUpload(port: number, path: string, headers: Record<string, string>, total: number, prefix = Buffer.alloc(0)): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunk = Buffer.alloc(64 * 1024);
    let queued = 0;
    let done = false;
    let error: string | undefined;
    let sentAtAnswer = -1;
    let raw = Buffer.alloc(0);
    const sent = () => Math.max(0, queued - socket.writableLength);
    socket.on('data', (d: Buffer) => {
      raw = Buffer.concat([raw, d]);
      if (sentAtAnswer < 0 && raw.includes('\r\n')) sentAtAnswer = sent();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    const stop = () => (done = true);
    socket.on('end', stop);
    socket.on('close', () => {
      stop();
      const text = raw.toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const head = (split >= 0 ? text.slice(0, split) : text).split('\r\n');
      const hdrs: Record<string, string> = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) hdrs[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0),
        headers: hdrs,
        body: split >= 0 ? text.slice(split + 4) : '',
        sentAtAnswer,
        sentAtEnd: sent(),
        total,
        ...(error ? { error } : {}),
      });
    });
    socket.once('connect', async () => {
      const head = [`POST ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, `Content-Length: ${total}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
      socket.write(`${head.join('\r\n')}\r\n\r\n`);
      socket.write(prefix);
      queued = prefix.length;
      while (!done && queued < total) {
        const n = Math.min(chunk.length, total - queued);
        const ok = socket.write(chunk.subarray(0, n), () => undefined);
        queued += n;
        if (!ok) await new Promise<void>((r) => (socket.once('drain', r), socket.once('close', r)));
      }
    });
  });
}

const BIG = 32 * 1024 * 1024; // far more than the socket buffers hold when the server reads nothing

/** Assert the shape of an `early=` answer: status first, then the upload cut off mid-body. */
function expectEarly(a: RawAnswer, status: number): void {
  expect(a.status).toBe(status);
  expect(a.headers.connection).toBe('close');
  expect(a.sentAtAnswer).toBeGreaterThanOrEqual(0);
  expect(a.sentAtAnswer).toBeLessThan(a.total); // the answer came before the body was sent
  expect(a.sentAtEnd).toBeLessThan(a.total); // and the upload never completed
}

async function timed<T>(p: Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await p;
  return { value, ms: performance.now() - t0 };
}

function silence(ms: number): Buffer {
  return Buffer.alloc(ms * 32); // 16 kHz s16le mono
}

/** Nothing but `expected` messages arrives within `ms`, and the socket stays open. */
async function expectSilence(c: RawClient, ms: number, expected = 0): Promise<void> {
  const closed = await Promise.race([c.closed.then(() => true), sleep(ms).then(() => false)]);
  expect(closed).toBe(false);
  expect(c.messages).toHaveLength(expected);
}

// ---- argument checking -------------------------------------------------------------------------------

test('bad --fault specs are refused with a usage message and exit 1', async () => {
  const bogus = await runCli(['openai', '--fault', '503-storm']);
  expect(bogus.code).toBe(1);
  expect(bogus.stderr).toMatch(/invalid fault "503-storm".*429-storm\[:N\]/);
  const count = await runCli(['deepgram', '--fault', '429-storm:0']);
  expect(count.code).toBe(1);
  expect(count.stderr).toMatch(/N must be a positive integer/);
  // early= needs a REST upload: the streaming-only emulators refuse it.
  const early = await runCli(['fireworks', '--fault', 'early=401']);
  expect(early.code).toBe(1);
  expect(early.stderr).toMatch(/early= applies to REST endpoints only/);
});

// ---- Deepgram ------------------------------------------------------------------------------------------

test('deepgram pre-recorded: early=401 cuts the upload off, 429-storm, then --service-time-ms', async () => {
  const cli = await startCli(['deepgram', '--fault', 'early=401:1', '--fault', '429-storm:1', '--service-time-ms', '300']);
  expect(cli.lines[0]).toContain('faults: early=401:1 429-storm:1');
  const auth = { Authorization: `Token ${KEY}`, 'Content-Type': 'audio/wav' };

  // 1. early=401: the answer arrives while the client is still uploading, then the connection closes.
  const early = await rawUpload(cli.ready.port, '/v1/listen?model=nova-3', auth, BIG);
  expectEarly(early, 401);
  expect(early.headers['dg-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  expect(JSON.parse(early.body)).toMatchObject({ err_code: 'INVALID_AUTH', err_msg: 'Invalid credentials.' });

  // 2. 429-storm:1 — Deepgram's rate-limit answer, with a Retry-After.
  const body = Buffer.alloc(32_000, 1);
  const limited = await fetch(`${cli.ready.url}/v1/listen?model=nova-3`, { method: 'POST', body, headers: auth });
  expect(limited.status).toBe(429);
  expect(limited.headers.get('retry-after')).toBe('1');
  expect(limited.headers.get('dg-error')).toMatch(/Too Many Requests/);
  expect(await limited.json()).toMatchObject({ err_code: 'TOO_MANY_REQUESTS' });

  // 3. faults spent: a normal answer, held for the fixed service time.
  const ok = await timed(fetch(`${cli.ready.url}/v1/listen?model=nova-3`, { method: 'POST', body, headers: auth }));
  expect(ok.value.status).toBe(200);
  const json = (await ok.value.json()) as { metadata: { duration: number } };
  expect(json.metadata.duration).toBeCloseTo(1, 3); // 32 000 bytes as 16 kHz s16le
  expect(ok.ms).toBeGreaterThanOrEqual(290);

  const s = await stats(cli);
  expect(s.provider).toBe('deepgram');
  expect(s.keys['project-1/prerecorded']).toMatchObject({ refused: 1, sessions: 1, maxInFlight: 1, inFlight: 0, cap: 100 });
  expect(s.applied).toMatchObject({ early: 1, '429-storm': 1 });
  expect(s.faults.map((f) => [f.spec, f.remaining, f.applied])).toEqual([
    ['early=401:1', 0, 1],
    ['429-storm:1', 0, 1],
  ]);
});

test('deepgram live: handshake 429 and 503, a drop, a session that never answers, CloseStream service time', async () => {
  const cli = await startCli([
    'deepgram',
    '--fault', '429-storm:1',
    '--fault', '5xx:1',
    '--fault', 'drop-after=0.5:1',
    '--fault', 'never-answer:1',
    '--service-time-ms', '400',
  ]);
  const url = `${cli.ready.wsUrl!}/v1/listen?model=nova-3&encoding=linear16&sample_rate=16000`;
  const auth = { Authorization: `Token ${KEY}` };

  // Handshake refusals are plain HTTP with dg-error / dg-request-id (§2.1).
  const storm = (await rawClient(url, auth).catch((e: unknown) => e)) as { status: number; headers: Record<string, string> };
  expect(storm.status).toBe(429);
  expect(storm.headers['retry-after']).toBe('1');
  expect(storm.headers['dg-error']).toMatch(/Too Many Requests/);
  expect(storm.headers['dg-request-id']).toBeTruthy();
  const unavailable = (await rawClient(url, auth).catch((e: unknown) => e)) as { status: number; headers: Record<string, string> };
  expect(unavailable.status).toBe(503);
  expect(unavailable.headers['dg-error']).toMatch(/try again later/i);

  // drop-after=0.5: the socket goes away without a close frame about 0.5 s after the handshake.
  const t0 = performance.now();
  const dropped = await rawClient(url, auth);
  dropped.ws.send(silence(100));
  const closed = await dropped.closed;
  expect(closed.code).toBe(1006);
  expect(performance.now() - t0).toBeGreaterThanOrEqual(450);
  expect(dropped.messages).toHaveLength(0);

  // never-answer: audio and CloseStream are taken, nothing ever comes back; the stream holds its slot.
  const silent = await rawClient(url, auth);
  for (let i = 0; i < 5; i++) silent.ws.send(silence(100));
  silent.ws.send(JSON.stringify({ type: 'CloseStream' }));
  await expectSilence(silent, 1200);
  expect((await stats(cli)).keys['project-1/live']).toMatchObject({ inFlight: 1 });
  silent.ws.close(1000);
  expect((await statsUntil(cli, (s) => s.keys['project-1/live']!.inFlight === 0)).keys['project-1/live']!.inFlight).toBe(0);

  // Faults spent: a normal stream; CloseStream's Metadata comes after the service time.
  const normal = await rawClient(url, auth);
  const t1 = performance.now();
  normal.ws.send(JSON.stringify({ type: 'CloseStream' }));
  const metadata = await normal.next((m) => m.type === 'Metadata');
  expect(performance.now() - t1).toBeGreaterThanOrEqual(390);
  expect(metadata).toMatchObject({ type: 'Metadata', duration: 0, channels: 0 });
  expect((await normal.closed).code).toBe(1000);

  // The emulator counts the stream out when its side of the socket closes, which may be a moment
  // after the client saw the close frame.
  const s = await statsUntil(cli, (x) => x.keys['project-1/live']!.inFlight === 0);
  expect(s.keys['project-1/live']).toMatchObject({ refused: 1, sessions: 3, inFlight: 0 });
  expect(s.applied).toMatchObject({ '429-storm': 1, '5xx': 1, 'drop-after': 1, 'never-answer': 1 });

  // The emulator's records over its control API (what a test in the same process reads on the handle).
  const records = (await (await fetch(`${cli.ready.url}/_emulator/sessions`)).json()) as { live: Array<{ metadataSent: boolean; closedBy?: string }>; rest: unknown[] };
  expect(records.live.filter((x) => x.metadataSent)).toHaveLength(1);
  expect(records.live.filter((x) => x.closedBy === 'drop')).toHaveLength(1);
  expect(records.rest).toEqual([]);
  const later = (await (await fetch(`${cli.ready.url}/_emulator/sessions?since=${records.live.length}`)).json()) as { live: unknown[] };
  expect(later.live).toEqual([]);
});

// ---- AssemblyAI ----------------------------------------------------------------------------------------

test('assemblyai: session-limit close 1008, internal error 3005, a drop, a session that never answers', async () => {
  const cli = await startCli(['assemblyai', '--fault', '429-storm:1', '--fault', '5xx:1', '--fault', 'drop-after=0.4:1', '--fault', 'never-answer:1']);
  const url = `${cli.ready.wsUrl!}/v3/ws?speech_model=universal-streaming-english&sample_rate=16000&encoding=pcm_s16le`;
  const auth = { Authorization: KEY };

  // 429-storm: AssemblyAI's real answer is a close after the upgrade, not an HTTP 429 (§3.6).
  const storm = await rawClient(url, auth);
  expect(await storm.closed).toEqual({ code: 1008, reason: 'Unauthorized connection: Too many concurrent sessions' });
  expect(storm.messages.some((m) => m.type === 'Begin')).toBe(false);

  // 5xx: the catch-all server error close 3005, announced by an Error frame.
  const failed = await rawClient(url, auth);
  expect(await failed.closed).toEqual({ code: 3005, reason: 'Session Cancelled: An error occurred' });
  expect(failed.messages).toEqual([expect.objectContaining({ type: 'Error', error_code: 3005 })]);

  // drop-after=0.4: Begin, then the socket is gone without a close frame.
  const t0 = performance.now();
  const dropped = await rawClient(url, auth);
  await dropped.next((m) => m.type === 'Begin');
  dropped.ws.send(silence(100));
  expect((await dropped.closed).code).toBe(1006);
  expect(performance.now() - t0).toBeGreaterThanOrEqual(350);

  // never-answer: Begin (the session is accepted), then nothing — not even Termination after Terminate.
  const silent = await rawClient(url, auth);
  await silent.next((m) => m.type === 'Begin');
  silent.ws.send(silence(100));
  silent.ws.send(silence(100));
  silent.ws.send(JSON.stringify({ type: 'Terminate' }));
  await expectSilence(silent, 1200, 1);
  silent.ws.close(1000);

  const s = await statsUntil(cli, (x) => x.keys[KEY]?.inFlight === 0);
  expect(s.keys[KEY]).toMatchObject({ refused: 1, sessions: 2, maxInFlight: 1, inFlight: 0, cap: null });
});

// ---- Fireworks: faults switched over the control endpoint ------------------------------------------

test('fireworks: the control endpoint switches a 429 storm on and off; 5xx, never-answer; final echo after the service time', async () => {
  const cli = await startCli(['fireworks', '--service-time-ms', '300', '--retry-after', '2']);
  const url = `${cli.ready.wsUrl!}/v1/audio/transcriptions/streaming?language=en`;
  const auth = { Authorization: KEY };

  expect(await control(cli, 'GET')).toMatchObject({ status: 200, json: { faults: [] } });
  const on = await control(cli, 'POST', { faults: ['429-storm'] });
  expect(on.status).toBe(200);
  expect(on.json.faults).toEqual([expect.objectContaining({ spec: '429-storm', kind: '429-storm', applied: 0 })]);

  for (let i = 0; i < 2; i++) {
    const refused = (await rawClient(url, auth).catch((e: unknown) => e)) as { status: number; headers: Record<string, string> };
    expect(refused.status).toBe(429);
    expect(refused.headers['retry-after']).toBe('2');
  }
  expect((await stats(cli)).keys[KEY]).toMatchObject({ refused: 2, sessions: 0 });

  // A bad spec is refused and changes nothing; early= does not apply to a WebSocket-only emulator.
  const bad = await control(cli, 'POST', { faults: ['early=401'] });
  expect(bad.status).toBe(400);
  expect(String(bad.json.error)).toMatch(/REST endpoints only/);
  expect((await control(cli, 'POST', { faults: 'nope' })).status).toBe(400);
  expect((await control(cli, 'GET')).json.faults).toEqual([expect.objectContaining({ spec: '429-storm', applied: 2 })]);

  // Off: the next stream is served, and its final checkpoint is echoed after the service time.
  expect(await control(cli, 'DELETE')).toMatchObject({ status: 200, json: { faults: [] } });
  const normal = await rawClient(url, auth);
  for (let i = 0; i < 3; i++) normal.ws.send(silence(100));
  const t0 = performance.now();
  normal.ws.send(JSON.stringify({ checkpoint_id: 'final' }));
  await normal.next((m) => m.checkpoint_id === 'final');
  expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
  normal.ws.close(1000);

  // Appended at run time and applied in order: one handshake 500, then one stream that never answers.
  expect((await control(cli, 'POST', { faults: ['5xx=500:1'] })).status).toBe(200);
  expect((await control(cli, 'POST', { faults: ['never-answer:1'], append: true })).json.faults).toHaveLength(2);
  const failed = (await rawClient(url, auth).catch((e: unknown) => e)) as { status: number };
  expect(failed.status).toBe(500);
  const silent = await rawClient(url, auth);
  for (let i = 0; i < 3; i++) silent.ws.send(silence(100));
  silent.ws.send(JSON.stringify({ checkpoint_id: 'final' }));
  await expectSilence(silent, 1000);
  expect((await stats(cli)).keys[KEY]).toMatchObject({ inFlight: 1, sessions: 2 });
  silent.ws.close(1000);
  await statsUntil(cli, (s) => s.keys[KEY]!.inFlight === 0);

  // DELETE /_emulator/stats resets the high-water marks and counters.
  const reset = await fetch(`${cli.ready.url}/_emulator/stats`, { method: 'DELETE' });
  expect(((await reset.json()) as Stats).keys[KEY]).toMatchObject({ refused: 0, sessions: 0, maxInFlight: 0 });
});

// ---- OpenAI --------------------------------------------------------------------------------------------

test('openai: 503, never-answer holds a slot, drop-after, early=413 before the upload is read, then --service-time-ms', async () => {
  const cli = await startCli([
    'openai',
    '--fault', '5xx:1',
    '--fault', 'never-answer:1',
    '--fault', 'drop-after=0.5:1',
    '--fault', 'early=413:1',
    '--service-time-ms', '250',
  ]);
  const endpoint = cli.ready.endpoint!;
  const form = () => {
    const f = new FormData();
    f.append('model', 'whisper-1');
    f.append('file', new Blob([Buffer.alloc(64_000, 1)], { type: 'audio/wav' }), 'clip.wav');
    return f;
  };
  const post = (signal?: AbortSignal) => fetch(endpoint, { method: 'POST', body: form(), headers: { authorization: `Bearer ${KEY}` }, ...(signal ? { signal } : {}) });

  // 5xx: OpenAI's overloaded answer.
  const unavailable = await post();
  expect(unavailable.status).toBe(503);
  expect(await unavailable.json()).toMatchObject({ error: { type: 'server_error' } });

  // never-answer: the request is in flight at the provider until the client gives up.
  const ctrl = new AbortController();
  const hung = post(ctrl.signal).then(
    () => 'answered',
    (e: Error) => e.name,
  );
  expect((await statsUntil(cli, (s) => s.keys[KEY]?.inFlight === 1)).keys[KEY]!.inFlight).toBe(1);
  await sleep(500);
  ctrl.abort();
  expect(await hung).toBe('AbortError');
  expect((await statsUntil(cli, (s) => s.keys[KEY]!.inFlight === 0)).keys[KEY]!.inFlight).toBe(0);

  // drop-after=0.5: the connection is destroyed with no answer.
  const dropped = await timed(post().then(
    (r) => `HTTP ${r.status}`,
    (e: Error & { cause?: { code?: string; message?: string } }) => `${e.message}: ${e.cause?.code ?? e.cause?.message ?? ''}`,
  ));
  expect(dropped.value).toMatch(/^fetch failed/);
  expect(dropped.ms).toBeGreaterThanOrEqual(450);

  // early=413: the answer is written before the (multipart) body is read; the upload is cut off.
  const early = await rawUpload(
    cli.ready.port,
    '/v1/audio/transcriptions',
    { Authorization: `Bearer ${KEY}`, 'Content-Type': 'multipart/form-data; boundary=b0undary' },
    BIG,
    Buffer.from('--b0undary\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\nContent-Type: audio/wav\r\n\r\n'),
  );
  expectEarly(early, 413);
  expect(JSON.parse(early.body)).toMatchObject({ error: { message: expect.stringMatching(/^Maximum content size limit/), type: 'server_error' } });
  expect(early.headers['x-request-id']).toMatch(/^req_/);

  // Faults spent: a normal answer after the fixed service time (no recognition: empty text).
  const ok = await timed(post());
  expect(ok.value.status).toBe(200);
  expect(await ok.value.json()).toMatchObject({ text: '' });
  expect(ok.ms).toBeGreaterThanOrEqual(240);

  const s = await stats(cli);
  expect(s.keys[KEY]).toMatchObject({ sessions: 3, maxInFlight: 1, inFlight: 0, cap: 50 });
  expect(s.applied).toEqual({ '429-storm': 0, '5xx': 1, 'never-answer': 1, 'drop-after': 1, early: 1 });
});

test('openai: 429-storm via the CLI, cleared over HTTP; unknown control paths are 404', async () => {
  const cli = await startCli(['openai', '--fault', '429-storm', '--service-time-ms', '0']);
  const post = () => {
    const f = new FormData();
    f.append('model', 'whisper-1');
    f.append('file', new Blob([Buffer.alloc(16_000, 1)], { type: 'audio/wav' }), 'clip.wav');
    return fetch(cli.ready.endpoint!, { method: 'POST', body: f, headers: { authorization: `Bearer ${KEY}` } });
  };
  for (let i = 0; i < 3; i++) {
    const r = await post();
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toBe('1');
    expect(r.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(await r.json()).toMatchObject({ error: { code: 'rate_limit_exceeded' } });
  }
  // A bad key still gets the provider's own 401: faults hit authenticated requests only.
  const denied = await fetch(cli.ready.endpoint!, { method: 'POST', body: new FormData(), headers: { authorization: 'Bearer wrong' } });
  expect(denied.status).toBe(401);
  await denied.text();

  expect((await control(cli, 'DELETE')).status).toBe(200);
  const ok = await post();
  expect(ok.status).toBe(200);
  await ok.text();
  expect((await stats(cli)).keys[KEY]).toMatchObject({ refused: 3, sessions: 1 });

  const unknown = await fetch(`${cli.ready.url}/_emulator/nope`);
  expect(unknown.status).toBe(404);
  await unknown.text();
  const wrongMethod = await fetch(`${cli.ready.url}/_emulator/stats`, { method: 'PUT' });
  expect(wrongMethod.status).toBe(405);
  await wrongMethod.text();
});
