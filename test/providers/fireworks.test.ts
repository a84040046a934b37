/**
 * Fireworks streaming ASR: our client against the emulator (providers.md §4, §7.5, Appendix A).
 * The long real-time sessions start together in beforeAll and the tests await them.
 */
import { join } from 'node:path';
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
import { FireworksProvider, type FireworksProviderOptions } from '@scribe-fleet/core/adapters/providers/fireworks';
import { DEFAULT_SAMPLES, SENTENCES, type SampleSpec } from '../../infra/local/src/samples';
import {
  startFireworksEmulator,
  type FireworksEmulatorHandle,
  type FireworksEmulatorOptions,
  type FireworksSessionInfo,
} from '@scribe-fleet/emulators';
import {
  analysePacing,
  decodeFile,
  fileAudioInput,
  makeFixtures,
  makeJoinedFixture,
  rawClient,
  sessionContext,
  toneInput,
  type FixtureSet,
  type RawClient,
} from './streaming-test-kit';

jest.setTimeout(60_000);

const KEY = 'fw-test-key-4a91be';
const MODEL = 'fireworks-asr-large';
const M4A = DEFAULT_SAMPLES[3]!; // rms, 48 kHz m4a (moov at the end: spooled by the decoder)
const PARTS: SampleSpec[] = [
  { name: 'part-a', voice: 'kal16', format: 'wav', text: SENTENCES[3] },
  { name: 'part-b', voice: 'kal16', format: 'wav', text: SENTENCES[6] },
];
const TWO_PART_TEXT = PARTS.map((p) => p.text).join(' ');

interface Run {
  result?: ProviderResult;
  error?: unknown;
  events: SessionEvent[];
}

let fx: FixtureSet;
let twoPart: string;
const emulators: FireworksEmulatorHandle[] = [];
let emu: FireworksEmulatorHandle; // defaults: frame rules warn, pacing strict (5 s allowance)
let strictEmu: FireworksEmulatorHandle; // frame rules close, pacing allowance 0.5 s
let rawEmu: FireworksEmulatorHandle; // pacing not enforced: raw clients may blast audio
let runs: { twoPart: Promise<Run>; m4a: Promise<Run> };

async function emulator(opts: Partial<FireworksEmulatorOptions> = {}): Promise<FireworksEmulatorHandle> {
  const e = await startFireworksEmulator({ apiKeys: [KEY], ...opts });
  emulators.push(e);
  return e;
}

function client(e: FireworksEmulatorHandle, opts: Partial<FireworksProviderOptions> = {}): FireworksProvider {
  return new FireworksProvider({ apiKey: KEY, baseUrl: e.wsUrl, ...opts });
}

async function run(provider: FireworksProvider, audio = toneInput(1), signal?: AbortSignal): Promise<Run> {
  const ctx = sessionContext(signal);
  try {
    return { result: await provider.transcribe({ mode: 'stream', model: MODEL, options: { language: 'en' }, audio }, ctx), events: ctx.events };
  } catch (error) {
    return { error, events: ctx.events };
  }
}

function url(e: FireworksEmulatorHandle, query = 'language=en&timestamp_granularities=word,segment'): string {
  return `${e.wsUrl}/v1/audio/transcriptions/streaming?${query}`;
}

const raw = (e: FireworksEmulatorHandle, query?: string): Promise<RawClient> => rawClient(url(e, query), { Authorization: KEY });

function sessionClosed(e: FireworksEmulatorHandle, id: string): Promise<FireworksSessionInfo> {
  const done = e.sessions().find((x) => x.id === id && x.closeCode !== undefined);
  if (done) return Promise.resolve(done);
  return new Promise((resolve) => {
    const on = (info: FireworksSessionInfo) => {
      if (info.id !== id) return;
      e.events.off('session-closed', on);
      resolve(info);
    };
    e.events.on('session-closed', on);
  });
}

function frames(pcm: Buffer, frameMs: number): Buffer[] {
  const size = frameMs * 32;
  const out: Buffer[] = [];
  for (let i = 0; i + size <= pcm.length; i += size) out.push(pcm.subarray(i, i + size));
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
  expect(err.message).toMatch(/^fireworks: /);
  expect(err.message).not.toContain(KEY);
  return err;
}

type Seg = { id: number | string; text: string; start?: number; end?: number; words: Array<Record<string, unknown>> };
const segmentsOf = (msgs: Array<Record<string, unknown>>): Seg[] => msgs.flatMap((m) => (Array.isArray(m.segments) ? (m.segments as Seg[]) : []));

beforeAll(async () => {
  fx = await makeFixtures([M4A]);
  twoPart = await makeJoinedFixture(PARTS, join(fx.dir, 'two-part.wav'));
  emu = await emulator();
  strictEmu = await emulator({ strictFrames: true, rateAllowanceSeconds: 0.5 }); // ≥ one 400 ms chunk
  rawEmu = await emulator({ strictPacing: false });
  runs = {
    twoPart: run(client(strictEmu), fileAudioInput(twoPart)),
    m4a: run(client(strictEmu, { chunkMs: 400 }), fileAudioInput(fx.get(M4A.name).path)),
  };
});

afterAll(async () => {
  if (runs) await Promise.allSettled(Object.values(runs));
  await Promise.all(emulators.map((e) => e.close()));
  await fx?.cleanup();
});

describe('real transcripts', () => {
  test('two utterances, merged by segment id despite revisions and string ids (WER ≤ 15 %)', async () => {
    const r = await runs.twoPart;
    expect(r.error).toBeUndefined();
    const { transcript, stats } = r.result!;
    expect(wordErrorRate(TWO_PART_TEXT, transcriptText(transcript))).toBeLessThanOrEqual(0.15);
    expect(transcript.segments.length).toBeGreaterThanOrEqual(2);
    // Each spoken sentence once, in order: the revised re-sends overwrote, they were not appended.
    expect(transcript.segments[0]!.text.toLowerCase()).toContain('office');
    expect(transcript.segments.at(-1)!.text.toLowerCase()).toContain('weather');
    const words = transcript.segments.flatMap((s) => s.words);
    for (const [i, w] of words.entries()) {
      expect(w.end).toBeGreaterThan(w.start);
      if (i > 0) expect(w.start).toBeGreaterThanOrEqual(words[i - 1]!.start);
    }
    expect(transcript.duration).toBeGreaterThan(9);
    expect(stats.finalResults).toBe(transcript.segments.length);
    const events = r.events.filter((e) => e.type !== 'session:chunk-lateness').map((e) => e.type);
    expect(events[0]).toBe('session:open');
    expect(events).toContain('session:first-result');
    expect(events.at(-1)).toBe('session:closed');
  });

  test('a 48 kHz m4a with 400 ms chunks (WER ≤ 15 %)', async () => {
    const r = await runs.m4a;
    expect(r.error).toBeUndefined();
    expect(wordErrorRate(M4A.text, transcriptText(r.result!.transcript))).toBeLessThanOrEqual(0.15);
  });

  test('the emulator really revised earlier segments and sent string ids; we finished with the final handshake and closed', async () => {
    await Promise.all([runs.twoPart, runs.m4a]);
    for (const s of strictEmu.sessions()) {
      const closed = await sessionClosed(strictEmu, s.id);
      expect(closed.revisionsSent).toBeGreaterThan(0);
      expect(closed).toMatchObject({ finalEchoed: true, checkpoints: ['final'], closedBy: 'client', closeCode: 1000 });
    }
  });
});

describe('our client never trips the rules', () => {
  test('frames are whole samples of 50–400 ms, chunkMs apart, never ahead of real time; no violations', async () => {
    await Promise.all([runs.twoPart, runs.m4a]);
    expect(strictEmu.sessions()).toHaveLength(2);
    const chunkSizes: number[] = [];
    for (const s of strictEmu.sessions()) {
      const f = strictEmu.frames.frames(s.id);
      const a = analysePacing(f);
      const chunkMs = a.maxFrameMs; // 100 (two-part run) or 400 (m4a run)
      chunkSizes.push(chunkMs);
      expect(a.minFrameMs).toBeGreaterThanOrEqual(50);
      expect(f.filter((x) => x.kind === 'binary').every((x) => x.size % 2 === 0)).toBe(true);
      expect(Math.abs(a.medianGapMs - chunkMs)).toBeLessThan(20);
      expect(a.maxAheadMs).toBeLessThan(chunkMs + 150);
      // The only text frame we sent is the final checkpoint, after all audio.
      const texts = f.filter((x) => x.kind === 'text' && x.direction === 'in');
      expect(texts.map((x) => x.type)).toEqual(['checkpoint']);
      expect(texts[0]!.at).toBeGreaterThan(f.filter((x) => x.kind === 'binary').at(-1)!.at);
    }
    expect(chunkSizes.sort((a, b) => a - b)).toEqual([100, 400]);
    expect(strictEmu.violations()).toEqual([]);
  });
});

describe('the emulator (§7.5) on a raw client', () => {
  test('checkpoint → flushed segments then the echo; trace and state.clear echoes; the server never closes', async () => {
    const pcm = await decodeFile(fx.get(M4A.name).path);
    const c = await raw(emu);
    for (const f of frames(pcm.subarray(0, 4 * 32000), 100)) c.ws.send(f); // 4 s: within the 5 s allowance
    c.ws.send(JSON.stringify({ checkpoint_id: 'cp-1' }));
    const echo = await c.next((m) => m.checkpoint_id === 'cp-1');
    expect(echo).toEqual({ checkpoint_id: 'cp-1' });
    // Everything before the echo is transcription; some segment words became final before it.
    const before = c.messages.slice(0, c.messages.indexOf(echo));
    expect(before.length).toBeGreaterThan(0);
    for (const m of before) expect(Object.keys(m).sort()).toEqual(['language', 'segments', 'task', 'text', 'words']);
    const segs = segmentsOf(before);
    expect(segs.some((s) => s.words.length > 0 && s.words.every((w) => w.is_final === true))).toBe(true);
    // timestamp_granularities=word,segment → start/end on words and segments.
    const last = segs.at(-1)!;
    expect(typeof last.start).toBe('number');
    expect(typeof last.words[0]!.start).toBe('number');

    c.ws.send(JSON.stringify({ event_id: 'e1', object: 'stt.input.trace', trace_id: 'tr-9' }));
    expect(await c.next((m) => m.object === 'stt.output.trace')).toMatchObject({ trace_id: 'tr-9', event_id: expect.any(String) });
    c.ws.send(JSON.stringify({ event_id: 'e2', object: 'stt.state.clear', reset_id: 'rs-3' }));
    expect(await c.next((m) => m.object === 'stt.state.cleared')).toMatchObject({ reset_id: 'rs-3' });
    expect(c.ws.readyState).toBe(c.ws.OPEN); // no auto-close: the client closes
    c.ws.close(1000);
    await c.closed;
  });

  test('later messages revise earlier segment ids; ids are strings, as in the guide; no timestamps unless asked', async () => {
    const pcm = await decodeFile(twoPart);
    const c = await raw(rawEmu, 'language=en');
    for (const f of frames(pcm, 200)) c.ws.send(f);
    c.ws.send(JSON.stringify({ checkpoint_id: 'final' }));
    await c.next((m) => m.checkpoint_id === 'final');
    const segs = segmentsOf(c.messages);
    expect(segs.some((s) => s.id === '0')).toBe(true);
    expect(segs.every((s) => typeof s.id === 'string')).toBe(true); // never a number
    // Segment 0 is sent final, then again later under the same id with a revised text.
    const seg0 = segs.filter((s) => Number(s.id) === 0);
    const finalAt = seg0.findIndex((s) => s.words.length > 0 && s.words.every((w) => w.is_final === true));
    expect(finalAt).toBeGreaterThanOrEqual(0);
    expect(seg0.slice(finalAt + 1).some((s) => s.text !== seg0[finalAt]!.text)).toBe(true);
    expect(segs.every((s) => s.start === undefined && s.words.every((w) => w.start === undefined))).toBe(true);
    c.ws.close();
  });

  test('frames that are not whole samples or outside 50–400 ms: a warning by default, close 1008 in strict mode', async () => {
    const c = await raw(emu);
    const id = emu.sessions().at(-1)!.id;
    c.ws.send(Buffer.alloc(3201)); // odd byte count
    c.ws.send(Buffer.alloc(640)); // 20 ms
    c.ws.send(Buffer.alloc(16000)); // 500 ms
    c.ws.send(JSON.stringify({ checkpoint_id: 'x' }));
    await c.next((m) => m.checkpoint_id === 'x'); // still serving
    expect(emu.violations(id).map((v) => v.rule).sort()).toEqual(['frame-duration', 'frame-duration', 'frame-not-whole-samples']);
    c.ws.close();

    const s = await raw(strictEmu);
    s.ws.send(Buffer.alloc(640));
    const closed = await s.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(/20 ms frame; expected 50–400 ms/);
  });

  test('unpaced audio → close 1008 under strict pacing (the default)', async () => {
    const c = await raw(emu);
    for (const f of frames(Buffer.alloc(8 * 32000), 100)) c.ws.send(f);
    const closed = await c.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(/^Audio sent faster than real time: received 5\.\d s of audio in \d+\.\d\d s$/);
    expect(emu.violations().some((v) => v.rule === 'too-fast')).toBe(true);
  });

  test('closing without the final handshake is flagged', async () => {
    const c = await raw(emu);
    const id = emu.sessions().at(-1)!.id;
    c.ws.send(Buffer.alloc(3200));
    c.ws.close(1000);
    await sessionClosed(emu, id);
    expect(emu.violations(id).map((v) => v.rule)).toEqual(['closed-without-final']);
  });

  test('auth: raw key in the header or the Authorization query parameter, else HTTP 401 at the upgrade', async () => {
    await expect(rawClient(url(emu))).rejects.toMatchObject({ status: 401 });
    await expect(rawClient(url(emu), { Authorization: `Bearer ${KEY}` })).rejects.toMatchObject({ status: 401 });
    const viaQuery = await rawClient(url(emu, `language=en&Authorization=${KEY}`));
    viaQuery.ws.close();
    await viaQuery.closed;
  });
});

describe('errors are classified per Appendix A', () => {
  test('bad key → ProviderAuthError (401)', async () => {
    const err = expectError(await run(new FireworksProvider({ apiKey: 'nope', baseUrl: emu.wsUrl })), ProviderAuthError, 401);
    expect(err.kind).toBe('unrecoverable');
  });

  test('over the per-key cap → 429 at the upgrade → ProviderRateLimitedError with Retry-After', async () => {
    const capped = await emulator({ maxConcurrentPerKey: 1, retryAfterSeconds: 2 });
    const holder = await raw(capped);
    const err = expectError(await run(client(capped)), ProviderRateLimitedError, 429);
    expect(err.retryAfterMs).toBe(2000);
    expect(err.kind).toBe('rate_limit');
    expect(capped.concurrency.maxConcurrent(KEY)).toBe(1);
    expect(capped.concurrency.refusals(KEY)).toBe(1);
    holder.ws.close();
  });

  test('a close before the final echo (any code) is retryable; a policy close (1008) is not', async () => {
    emu.faults = { closeBeforeFinalEcho: 4000 };
    const r = await run(client(emu), toneInput(0.3));
    expect(expectError(r, ProviderUnavailableError, 4000).kind).toBe('retry');
    const tooFast = await emulator({ rateAllowanceSeconds: -1 });
    expect(expectError(await run(client(tooFast)), ProviderRejectedError, 1008).kind).toBe('unrecoverable');
  });

  test('a drop mid-stream (1006) is retryable', async () => {
    emu.faults = { dropAfterAudioMs: 300 };
    expect(expectError(await run(client(emu)), ProviderUnavailableError, 1006).kind).toBe('retry');
  });

  test('503 once, then success', async () => {
    emu.faults = { fail5xxTimes: 1 };
    expect(expectError(await run(client(emu)), ProviderUnavailableError, 503).kind).toBe('retry');
    const ok = await run(client(emu), toneInput(0.5));
    expect(ok.error).toBeUndefined();
    expect(ok.result!.transcript.duration).toBeCloseTo(0.5, 2);
  });

  test('no final echo → ProviderTimeoutError after finalTimeoutMs; a silent handshake → ProviderTimeoutError', async () => {
    emu.faults = { ignoreFinal: true };
    const r = await run(client(emu, { finalTimeoutMs: 300 }), toneInput(0.3));
    expect(expectError(r, ProviderTimeoutError).message).toMatch(/no final checkpoint echo within 300 ms/);
    emu.faults = { neverAnswer: true };
    expectError(await run(client(emu, { connectTimeoutMs: 300 })), ProviderTimeoutError);
    emu.faults = {};
  });

  test('abort: the socket is closed and the call rejects with the cancellation', async () => {
    const ctrl = new AbortController();
    const before = emu.sessions().length;
    const p = run(client(emu), toneInput(20), ctrl.signal);
    setTimeout(() => ctrl.abort(new JobCancelledError('cancelled by test')), 500);
    const r = await p;
    expect(r.error).toBeInstanceOf(JobCancelledError);
    const s = emu.sessions()[before]!;
    await sessionClosed(emu, s.id);
    expect(s.audioSeconds).toBeLessThan(2);
    expect(emu.concurrency.inFlight(KEY)).toBe(0);
  });
});
