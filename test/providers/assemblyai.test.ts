/**
 * AssemblyAI Universal Streaming v3: our client against the emulator (providers.md §3, §7.4, Appendix A).
 * The long real-time sessions start together in beforeAll and the tests await them, so the file's
 * wall time is about the longest session rather than their sum.
 */
import { once } from 'node:events';
import {
  JobCancelledError,
  ProviderAuthError,
  ProviderRateLimitedError,
  ProviderRejectedError,
  ProviderTimeoutError,
  ProviderUnavailableError,
  ScribeError,
  transcriptText,
  wordErrorRate,
  type ProviderResult,
  type SessionEvent,
} from '@scribe-fleet/core';
import { AssemblyAIProvider, type AssemblyAIProviderOptions } from '@scribe-fleet/core/adapters/providers/assemblyai';
import { DEFAULT_SAMPLES, SENTENCES, type SampleSpec } from '../../infra/local/src/samples';
import {
  startAssemblyAIEmulator,
  TOO_MANY_SESSIONS_REASON,
  type AssemblyAIEmulatorHandle,
  type AssemblyAIEmulatorOptions,
  type AssemblyAISessionInfo,
} from '@scribe-fleet/emulators';
import {
  analysePacing,
  decodeFile,
  fileAudioInput,
  makeFixtures,
  rawClient,
  sessionContext,
  toneInput,
  type FixtureSet,
  type RawClient,
} from './streaming-test-kit';

jest.setTimeout(60_000);

const KEY = 'aai-test-key-7f3c9d';
const MODEL = 'universal-streaming-english';
const WAV = DEFAULT_SAMPLES[0]!; // kal16, two sentences, 16 kHz wav
const MP3 = DEFAULT_SAMPLES[1]!; // rms, 44.1 kHz stereo mp3
const SHORT: SampleSpec = { name: 'short-03.flac', voice: 'kal16', format: 'flac', text: SENTENCES[2], sampleRate: 22050 };

interface Run {
  result?: ProviderResult;
  error?: unknown;
  events: SessionEvent[];
}

let fx: FixtureSet;
const emulators: AssemblyAIEmulatorHandle[] = [];
let emu: AssemblyAIEmulatorHandle; // defaults: the real 5 s rate allowance, 1008 on auth failure
let strictEmu: AssemblyAIEmulatorHandle; // a much tighter rate allowance (0.3 s) for our client's real runs
let legacyEmu: AssemblyAIEmulatorHandle; // format_turns → legacy unformatted + formatted end-of-turn pair
let runs: { wav: Promise<Run>; mp3: Promise<Run>; formatted: Promise<Run>; inactivity: Promise<{ keepAliveAt: number; closedAt: number; code: number }> };

async function emulator(opts: Partial<AssemblyAIEmulatorOptions> = {}): Promise<AssemblyAIEmulatorHandle> {
  const e = await startAssemblyAIEmulator({ apiKeys: [KEY], ...opts });
  emulators.push(e);
  return e;
}

function client(e: AssemblyAIEmulatorHandle, opts: Partial<AssemblyAIProviderOptions> = {}): AssemblyAIProvider {
  return new AssemblyAIProvider({ apiKey: KEY, baseUrl: e.wsUrl, ...opts });
}

async function run(provider: AssemblyAIProvider, audio = toneInput(1), options: Record<string, string | number | boolean> = {}, signal?: AbortSignal): Promise<Run> {
  const ctx = sessionContext(signal);
  try {
    const result = await provider.transcribe({ mode: 'stream', model: MODEL, options, audio }, ctx);
    return { result, events: ctx.events };
  } catch (error) {
    return { error, events: ctx.events };
  }
}

function wsUrl(e: AssemblyAIEmulatorHandle, query = `speech_model=${MODEL}&sample_rate=16000`): string {
  return `${e.wsUrl}/v3/ws?${query}`;
}

async function openRaw(e: AssemblyAIEmulatorHandle, query?: string): Promise<RawClient> {
  const c = await rawClient(wsUrl(e, query), { Authorization: KEY });
  await c.next((m) => m.type === 'Begin');
  return c;
}

function requestIdOf(r: Run): string {
  const open = r.events.find((e) => e.type === 'session:open');
  if (open?.type !== 'session:open' || !open.requestId) throw new Error('the run never opened a session');
  return open.requestId;
}

/** Resolves when the emulator session `id` has closed. */
function sessionClosed(e: AssemblyAIEmulatorHandle, id: string): Promise<AssemblyAISessionInfo> {
  const done = e.sessions().find((x) => x.id === id && x.closeCode !== undefined);
  if (done) return Promise.resolve(done);
  return new Promise((resolve) => {
    const on = (info: AssemblyAISessionInfo) => {
      if (info.id !== id) return;
      e.events.off('session-closed', on);
      resolve(info);
    };
    e.events.on('session-closed', on);
  });
}

function session(e: AssemblyAIEmulatorHandle, id: string): AssemblyAISessionInfo {
  const s = e.sessions().find((x) => x.id === id);
  if (!s) throw new Error(`no emulator session ${id}`);
  return s;
}

/** Frames of `seconds` of audio cut into `frameMs` pieces. */
function frames(pcm: Buffer, frameMs: number, seconds = pcm.length / 32000): Buffer[] {
  const size = frameMs * 32;
  const out: Buffer[] = [];
  for (let i = 0; i + size <= Math.min(pcm.length, seconds * 32000); i += size) out.push(pcm.subarray(i, i + size));
  return out;
}

function expectError(r: Run, cls: abstract new (...a: never[]) => ScribeError, status?: number): ScribeError {
  expect(r.result).toBeUndefined();
  expect(r.error).toBeInstanceOf(cls);
  const err = r.error as ScribeError;
  if (status !== undefined) {
    expect(err.status).toBe(status);
    expect(err.message).toContain(String(status));
  }
  expect(err.message).toMatch(/^assemblyai: /);
  expect(err.message).not.toContain(KEY);
  return err;
}

beforeAll(async () => {
  fx = await makeFixtures([WAV, MP3, SHORT]);
  emu = await emulator();
  strictEmu = await emulator({ rateAllowanceSeconds: 0.3 });
  legacyEmu = await emulator({ legacyDoubleFormattedTurn: true });
  runs = {
    wav: run(client(strictEmu), fileAudioInput(fx.get(WAV.name).path)),
    mp3: run(client(strictEmu, { chunkMs: 50 }), fileAudioInput(fx.get(MP3.name).path)),
    formatted: run(client(legacyEmu, { chunkMs: 200 }), fileAudioInput(fx.get(SHORT.name).path), { format_turns: true }),
    // §7.4 inactivity_timeout=5: a KeepAlive at ~2 s resets the timer, so the close comes ≥ 5 s after it.
    inactivity: (async () => {
      const c = await openRaw(emu, `speech_model=${MODEL}&inactivity_timeout=5`);
      await new Promise((r) => setTimeout(r, 2000));
      c.ws.send(JSON.stringify({ type: 'KeepAlive' }));
      const keepAliveAt = Date.now();
      const { code } = await c.closed;
      return { keepAliveAt, closedAt: Date.now(), code };
    })(),
  };
});

afterAll(async () => {
  if (runs) await Promise.allSettled(Object.values(runs));
  await Promise.all(emulators.map((e) => e.close()));
  await fx?.cleanup();
});

describe('real transcripts', () => {
  test('a 16 kHz wav streamed in real time comes back as the spoken words (WER ≤ 15 %)', async () => {
    const r = await runs.wav;
    expect(r.error).toBeUndefined();
    const { transcript, stats } = r.result!;
    expect(wordErrorRate(WAV.text, transcriptText(transcript))).toBeLessThanOrEqual(0.15);
    expect(transcript.provider).toBe('assemblyai');
    // Times are seconds (converted from integer ms), inside the audio, in order.
    const words = transcript.segments.flatMap((s) => s.words);
    expect(words.length).toBeGreaterThan(10);
    for (const [i, w] of words.entries()) {
      expect(w.end).toBeGreaterThan(w.start);
      expect(w.end).toBeLessThanOrEqual(transcript.duration + 0.05);
      if (i > 0) expect(w.start).toBeGreaterThanOrEqual(words[i - 1]!.start);
    }
    expect(transcript.duration).toBeGreaterThan(8);
    // The request id is the session id from Begin; the session ended with Terminate → Termination → 1000.
    const s = await sessionClosed(strictEmu, stats.requestId);
    expect(s).toMatchObject({ terminateReceived: true, terminationSent: true, closeCode: 1000 });
    expect(stats.finalResults).toBe(transcript.segments.length);
    expect(r.events[0]).toEqual({ type: 'session:open', requestId: stats.requestId });
    expect(r.events.some((e) => e.type === 'session:first-result')).toBe(true);
    expect(r.events.filter((e) => e.type === 'session:final')).toHaveLength(transcript.segments.length);
    expect(r.events.at(-1)).toMatchObject({ type: 'session:closed', code: 1000 });
  });

  test('a 44.1 kHz stereo mp3 with 50 ms chunks (WER ≤ 15 %)', async () => {
    const r = await runs.mp3;
    expect(r.error).toBeUndefined();
    expect(wordErrorRate(MP3.text, transcriptText(r.result!.transcript))).toBeLessThanOrEqual(0.15);
  });

  test('format_turns with the legacy double end-of-turn: merged by turn_order, formatted version wins', async () => {
    const r = await runs.formatted;
    expect(r.error).toBeUndefined();
    const { transcript, stats } = r.result!;
    const s = session(legacyEmu, stats.requestId);
    // The emulator really sent two end-of-turn messages per turn; the transcript has each turn once.
    expect(transcript.segments.length).toBeGreaterThan(0);
    expect(s.endOfTurnsSent).toBe(2 * transcript.segments.length);
    expect(wordErrorRate(SHORT.text, transcriptText(transcript))).toBeLessThanOrEqual(0.15);
    expect(transcript.segments[0]!.text).toMatch(/^[A-Z].*\.$/);
    expect(transcript.segments[0]!.words[0]!.punctuated_word).toMatch(/^[A-Z]/);
  });
});

describe('our client never trips the strict rules', () => {
  test('every frame holds 50–1000 ms, frames are chunkMs apart and never ahead of real time', async () => {
    for (const [p, chunkMs] of [
      [runs.wav, 100],
      [runs.mp3, 50],
    ] as const) {
      const r = await p;
      const id = r.result!.stats.requestId;
      const a = analysePacing(strictEmu.frames.frames(id));
      expect(a.frames).toBe(r.result!.stats.chunksSent);
      expect(a.minFrameMs).toBeGreaterThanOrEqual(50); // the tail is padded to 50 ms
      expect(a.maxFrameMs).toBeLessThanOrEqual(1000);
      expect(a.maxFrameMs).toBe(chunkMs);
      expect(Math.abs(a.medianGapMs - chunkMs)).toBeLessThan(20);
      // Audio received never ran ahead of wall time by more than one chunk plus delivery jitter
      // (an unpaced client is seconds ahead); the client itself never sent before a deadline.
      expect(a.maxAheadMs).toBeLessThan(chunkMs + 150);
      expect(r.result!.stats.pacing!.latenessP50Ms).toBeGreaterThanOrEqual(-1);
      // No Error frame went out; Terminate was the only text frame we sent.
      const texts = strictEmu.frames.frames(id).filter((f) => f.kind === 'text');
      expect(texts.filter((f) => f.type === 'Error')).toHaveLength(0);
      expect(texts.filter((f) => f.direction === 'in').map((f) => f.type)).toEqual(['Terminate']);
    }
  });
});

describe('the emulator enforces §7.4 on a raw client', () => {
  test('Begin {type,id,expires_at = now + 3 h}; 50 ms and 1000 ms frames pass; Terminate → Termination (ints) → 1000', async () => {
    const c = await openRaw(emu);
    const begin = c.messages[0]!;
    expect(Object.keys(begin).sort()).toEqual(['expires_at', 'id', 'type']);
    expect(begin.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Math.abs((begin.expires_at as number) - (Date.now() / 1000 + 3 * 3600))).toBeLessThan(5);
    c.ws.send(Buffer.alloc(1600)); // exactly 50 ms
    c.ws.send(Buffer.alloc(32000)); // exactly 1000 ms
    c.ws.send(JSON.stringify({ type: 'UpdateConfiguration', end_of_turn_confidence_threshold: 0.5, max_turn_silence: 1000 }));
    c.ws.send(JSON.stringify({ type: 'KeepAlive' }));
    c.ws.send(JSON.stringify({ type: 'Terminate' }));
    const term = await c.next((m) => m.type === 'Termination');
    expect(Object.keys(term).sort()).toEqual(['audio_duration_seconds', 'session_duration_seconds', 'type']);
    expect(term.audio_duration_seconds).toBe(1);
    expect(Number.isInteger(term.session_duration_seconds)).toBe(true);
    expect((await c.closed).code).toBe(1000);
    // UpdateConfiguration and KeepAlive have no reply.
    expect(c.messages.map((m) => m.type)).toEqual(['Begin', 'Termination']);
  });

  test('audio faster than real time → Error frame + close 3007 "Audio Transmission Rate Exceeded" (default 5 s allowance)', async () => {
    const c = await openRaw(emu);
    const pcm = Buffer.alloc(8 * 32000);
    for (const f of frames(pcm, 100)) c.ws.send(f);
    const { code, reason } = await c.closed;
    expect(code).toBe(3007);
    expect(reason).toMatch(/^Audio Transmission Rate Exceeded: Received 5\.\d sec\. audio in \d+\.\d\d sec$/);
    expect(c.messages.find((m) => m.type === 'Error')).toMatchObject({ error_code: 3007, error: reason });
  });

  test.each([
    ['too short', 640, '20'],
    ['too long', 48000, '1500'],
  ])('a frame %s → close 3007 "Input duration violation"', async (_name, bytes, msText) => {
    const c = await openRaw(emu);
    c.ws.send(Buffer.alloc(bytes));
    const { code, reason } = await c.closed;
    expect(code).toBe(3007);
    expect(reason).toBe(`Input duration violation: ${msText} ms. Expected between 50 and 1000 ms`);
  });

  test.each([
    ['invalid JSON', '{"type": "Terminate"', /^Invalid JSON: /],
    ['an unknown type', '{"type":"Finalize"}', /^Invalid Message Type: Finalize$/],
    ['a non-object', '[]', /^Invalid Message: \[\]$/],
    ['the v2 terminate message', '{"terminate_session":true}', /^Invalid Message: \{"terminate_session":true\}$/],
  ])('%s → close 3006', async (_name, text, reason) => {
    const c = await openRaw(emu);
    c.ws.send(text);
    const closed = await c.closed;
    expect(closed.code).toBe(3006);
    expect(closed.reason).toMatch(reason);
  });

  test('closing without Terminate gets no Termination (and the session stops counting)', async () => {
    const c = await openRaw(emu);
    const id = c.messages[0]!.id as string;
    c.ws.send(Buffer.alloc(3200));
    c.ws.close(1000);
    await sessionClosed(emu, id);
    await c.closed;
    expect(c.messages.map((m) => m.type)).toEqual(['Begin']);
    expect(session(emu, id)).toMatchObject({ terminateReceived: false, terminationSent: false });
    expect(emu.concurrency.inFlight(KEY)).toBe(0);
  });

  test('ForceEndpoint ends the open turn at once: end_of_turn, integer-ms words, transcript of final words', async () => {
    const pcm = await decodeFile(fx.get(SHORT.name).path);
    const c = await openRaw(emu);
    for (const f of frames(pcm, 100, 4.5)) c.ws.send(f); // within the 5 s allowance
    c.ws.send(JSON.stringify({ type: 'ForceEndpoint' }));
    const turn = await c.next((m) => m.type === 'Turn' && m.end_of_turn === true);
    expect(turn).toMatchObject({ turn_order: 0, turn_is_formatted: false, end_of_turn: true });
    const words = turn.words as Array<{ text: string; start: number; end: number; word_is_final: boolean }>;
    expect(words.length).toBeGreaterThan(3);
    for (const w of words) {
      expect(Number.isInteger(w.start) && Number.isInteger(w.end)).toBe(true);
      expect(w.word_is_final).toBe(true);
      expect(w.end).toBeLessThanOrEqual(4600);
    }
    expect(turn.transcript).toBe(words.map((w) => w.text).join(' '));
    expect(turn.utterance).toBe(turn.transcript);
    // Partials before it: end_of_turn false, transcript = the words marked final.
    const partial = c.messages.find((m) => m.type === 'Turn' && m.end_of_turn === false);
    expect(partial).toBeDefined();
    const pw = partial!.words as Array<{ text: string; word_is_final: boolean }>;
    expect(partial!.transcript).toBe(pw.filter((w) => w.word_is_final).map((w) => w.text).join(' '));
    c.ws.send(JSON.stringify({ type: 'Terminate' }));
    await c.next((m) => m.type === 'Termination');
  });

  test('auth: raw Authorization key, or a temporary token (GET /v3/token, single use); else 1008 (or 401 at the upgrade)', async () => {
    const none = await rawClient(wsUrl(emu));
    expect(await none.closed).toEqual({ code: 1008, reason: 'Unauthorized Connection: Missing Authorization header' });
    const bad = await rawClient(wsUrl(emu), { Authorization: 'wrong' });
    expect((await bad.closed).code).toBe(1008);
    expect(bad.messages).toEqual([]); // no Begin

    expect((await fetch(`${emu.url}/v3/token?expires_in_seconds=60`, { headers: { Authorization: 'wrong' } })).status).toBe(401);
    const res = await fetch(`${emu.url}/v3/token?expires_in_seconds=60`, { headers: { Authorization: KEY } });
    const { token, expires_in_seconds } = (await res.json()) as { token: string; expires_in_seconds: number };
    expect(expires_in_seconds).toBe(60);
    const withToken = await rawClient(wsUrl(emu, `speech_model=${MODEL}&token=${token}`));
    await withToken.next((m) => m.type === 'Begin');
    withToken.ws.close();
    const reused = await rawClient(wsUrl(emu, `speech_model=${MODEL}&token=${token}`));
    expect((await reused.closed).code).toBe(1008);

    const httpEmu = await emulator({ authFailure: 'http' });
    await expect(rawClient(wsUrl(httpEmu), { Authorization: 'wrong' })).rejects.toMatchObject({ status: 401 });
  });

  test('a missing speech_model is refused (3006 by default, 400 at the upgrade if configured)', async () => {
    const c = await rawClient(wsUrl(emu, 'sample_rate=16000'), { Authorization: KEY });
    const { code, reason } = await c.closed;
    expect(code).toBe(3006);
    expect(reason).toMatch(/speech_model is required/);
    const httpEmu = await emulator({ invalidParams: 'http' });
    await expect(rawClient(wsUrl(httpEmu, 'sample_rate=16000'), { Authorization: KEY })).rejects.toMatchObject({ status: 400 });
  });

  test('inactivity_timeout closes an idle session; KeepAlive resets the timer', async () => {
    const r = await runs.inactivity;
    expect(r.code).toBe(1000);
    expect(r.closedAt - r.keepAliveAt).toBeGreaterThanOrEqual(4900);
  });
});

describe('errors are classified per Appendix A', () => {
  test('bad key → ProviderAuthError (1008, and 401 when refused at the upgrade); the key never appears', async () => {
    expectError(await run(new AssemblyAIProvider({ apiKey: `${KEY}-wrong`, baseUrl: emu.wsUrl })), ProviderAuthError, 1008);
    const httpEmu = await emulator({ authFailure: 'http' });
    const err = expectError(await run(new AssemblyAIProvider({ apiKey: 'bad', baseUrl: httpEmu.wsUrl })), ProviderAuthError, 401);
    expect(err.kind).toBe('unrecoverable');
  });

  test('too many sessions → ProviderRateLimitedError (1008 per-key cap, 3009 option, new sessions per minute)', async () => {
    const capped = await emulator({ maxConcurrentPerKey: 1 });
    const holder = await openRaw(capped);
    const err = expectError(await run(client(capped)), ProviderRateLimitedError, 1008);
    expect(err.message).toContain(TOO_MANY_SESSIONS_REASON);
    expect(err.kind).toBe('rate_limit');
    expect(capped.concurrency.maxConcurrent(KEY)).toBe(1);
    expect(capped.concurrency.refusals(KEY)).toBe(1);
    holder.ws.close();

    const capped3009 = await emulator({ maxConcurrentPerKey: 1, tooManySessionsCode: 3009 });
    const holder2 = await openRaw(capped3009);
    expectError(await run(client(capped3009)), ProviderRateLimitedError, 3009);
    holder2.ws.close();

    const perMinute = await emulator({ newSessionsPerMinute: 2 });
    for (let i = 0; i < 2; i++) (await openRaw(perMinute)).ws.close();
    expectError(await run(client(perMinute)), ProviderRateLimitedError, 1008);
  });

  test('sending too fast (3007) is unrecoverable: ProviderRejectedError', async () => {
    const e = await emulator({ rateAllowanceSeconds: -1 }); // any audio is "too fast"
    expect(expectError(await run(client(e)), ProviderRejectedError, 3007).kind).toBe('unrecoverable');
  });

  test('session age limit → close 3008 → ProviderRejectedError', async () => {
    const e = await emulator({ maxSessionSeconds: 1 });
    const r = await run(client(e), toneInput(3));
    expectError(r, ProviderRejectedError, 3008);
    expect((r.error as Error).message).toContain('Session Expired: Maximum session duration exceeded');
  });

  test('a drop mid-stream (1006) and a 3005 cancel are retryable', async () => {
    emu.faults = { dropAfterAudioMs: 300 };
    const dropped = await run(client(emu));
    expect(expectError(dropped, ProviderUnavailableError, 1006).kind).toBe('retry');
    emu.faults = { cancelAfterAudioMs: 300 };
    const cancelled = await run(client(emu));
    expectError(cancelled, ProviderUnavailableError, 3005);
    await sessionClosed(emu, requestIdOf(dropped));
    await sessionClosed(emu, requestIdOf(cancelled));
    expect(emu.concurrency.inFlight(KEY)).toBe(0);
  });

  test('a close before Begin rejects the connect at once (retryable)', async () => {
    emu.faults = { closeBeforeBegin: 3005 };
    const t0 = Date.now();
    const r = await run(client(emu));
    expectError(r, ProviderUnavailableError, 3005);
    expect((r.error as Error).message).toContain('before Begin');
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  test('503 once, then success: the first attempt throws a retryable error, the retry works', async () => {
    emu.faults = { fail5xxTimes: 1 };
    const first = await run(client(emu));
    expect(expectError(first, ProviderUnavailableError, 503).kind).toBe('retry');
    const second = await run(client(emu), toneInput(0.5));
    expect(second.error).toBeUndefined();
    expect(second.result!.transcript.duration).toBeCloseTo(0.5, 2);
  });

  test('a slow or silent handshake → ProviderTimeoutError', async () => {
    emu.faults = { slowFirstByteMs: 1500 };
    expectError(await run(client(emu, { connectTimeoutMs: 300 })), ProviderTimeoutError);
    emu.faults = { neverAnswer: true };
    expectError(await run(client(emu, { connectTimeoutMs: 300 })), ProviderTimeoutError);
    emu.faults = {};
  });

  test('the wait for Termination is bounded, and released at once when the socket closes', async () => {
    emu.faults = { onTerminate: 'ignore' };
    const ignored = await run(client(emu, { terminationTimeoutMs: 300 }), toneInput(0.3));
    expect(expectError(ignored, ProviderTimeoutError).message).toMatch(/no Termination within 300 ms/);
    emu.faults = { onTerminate: 'drop' };
    const t0 = Date.now();
    const dropped = await run(client(emu, { terminationTimeoutMs: 20_000 }), toneInput(0.3));
    expectError(dropped, ProviderUnavailableError, 1006);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  test('abort: the session is terminated and closed, the call rejects with the cancellation', async () => {
    const ctrl = new AbortController();
    const p = run(client(emu), toneInput(20), {}, ctrl.signal);
    const [info] = (await once(emu.events, 'session-open')) as [AssemblyAISessionInfo];
    setTimeout(() => ctrl.abort(new JobCancelledError('cancelled by test')), 300);
    const r = await p;
    expect(r.error).toBeInstanceOf(JobCancelledError);
    await sessionClosed(emu, info.id);
    expect(session(emu, info.id)).toMatchObject({ terminateReceived: true });
    expect(session(emu, info.id).audioSeconds).toBeLessThan(2);
    expect(emu.concurrency.inFlight(KEY)).toBe(0);
  });
});
