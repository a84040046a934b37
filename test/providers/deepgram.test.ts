/**
 * Deepgram client against the Deepgram emulator: real transcripts in batch (streamed body and URL
 * body) and stream mode, the emulator's strict rules refusing raw misbehaving clients while our
 * client never trips them, and the error classes (providers.md §1, §2, §7.2, §7.3, Appendix A).
 *
 * The real-time sessions (each lasts as long as its audio) are started together in beforeAll and
 * awaited by their tests, so the file stays well under a minute.
 */
import { once } from 'node:events';
import { createReadStream, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import {
  InputTooLargeError,
  JobCancelledError,
  ProviderAuthError,
  ProviderPaymentError,
  ProviderRateLimitedError,
  ProviderRejectedError,
  ProviderTimeoutError,
  ProviderUnavailableError,
  ScribeError,
  transcriptText,
  wordErrorRate,
  type AudioInput,
  type ProviderResult,
  type SessionEvent,
  type TranscribeRequest,
} from '@scribe-fleet/core';
import { DeepgramProvider, deepgramCloseError, parseDeepgramError } from '@scribe-fleet/core/adapters/providers/deepgram';
import { DEFAULT_SAMPLES, SENTENCES, type SampleSpec } from '../../infra/local/src/samples';
import { startDeepgramEmulator, type DeepgramEmulatorHandle } from '@scribe-fleet/emulators';
import { analysePacing, decodeFile, fileAudioInput, makeFixtures, rawClient, sessionContext, type FixtureSet } from './streaming-test-kit';

const KEY = 'dg-test-key';
const CAP_KEY = 'dg-cap-key';
const LONG = DEFAULT_SAMPLES[0]!; // interview-01.wav, two sentences, ~9 s
const MP3 = DEFAULT_SAMPLES[1]!; // meeting-02.mp3, 44.1 kHz stereo
const SHORT: SampleSpec = { name: 'short.wav', voice: 'kal16', format: 'wav', text: SENTENCES[2] };
const MAX_WER = 0.15;

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };
function background<T>(fn: () => Promise<T>): Promise<Outcome<T>> {
  return fn().then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}
async function unwrap<T>(p: Promise<Outcome<T>>): Promise<T> {
  const o = await p;
  if (!o.ok) throw o.error;
  return o.value;
}

/** A file AudioInput with the content type and a "presigned URL" served by a local HTTP server. */
function audioOf(path: string, contentType: string, urlBase?: string): AudioInput {
  const base = fileAudioInput(path);
  const input: AudioInput = {
    ...base,
    original: async () => ({ ...(await base.original()), contentType }),
  };
  if (urlBase) input.presignedUrl = async () => `${urlBase}/${path.split('/').pop()}?X-Amz-Signature=fake`;
  return input;
}

/** A source that stalls for `stallMs` after `afterBytes` bytes of PCM (an S3 read that hangs). */
function stallingAudio(path: string, afterBytes: number, stallMs: number): AudioInput {
  const base = fileAudioInput(path);
  return {
    ...base,
    async *pcm(signal?: AbortSignal) {
      let sent = 0;
      let stalled = false;
      for await (const chunk of base.pcm(signal)) {
        if (!stalled && sent + chunk.length > afterBytes) {
          const head = chunk.subarray(0, Math.max(0, afterBytes - sent));
          if (head.length) yield head;
          stalled = true;
          await sleep(stallMs, undefined, signal ? { signal } : undefined);
          yield chunk.subarray(head.length);
        } else yield chunk;
        sent += chunk.length;
      }
    },
  };
}

function req(mode: 'batch' | 'stream', audio: AudioInput, options: TranscribeRequest['options'] = {}): TranscribeRequest {
  return { mode, model: 'nova-3', options, audio };
}

async function rejection(p: Promise<unknown>): Promise<ScribeError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ScribeError);
    return e as ScribeError;
  }
  throw new Error('expected a rejection');
}

function expectNoKey(err: Error, ...keys: string[]) {
  for (const k of keys) expect(err.message).not.toContain(k);
}

let fx: FixtureSet;
let rt: DeepgramEmulatorHandle; // real-time sessions, strict pacing on
let emu: DeepgramEmulatorHandle; // request/response and fault tests
let files: Server;
let filesUrl: string;
let streamRun: Promise<Outcome<{ result: ProviderResult; events: SessionEvent[] }>>;
let stallRun: Promise<Outcome<ProviderResult>>;
let idleRuns: Promise<Outcome<Array<{ code: number; reason: string; afterMs: number }>>>;
let retryRun: Promise<Outcome<{ first: unknown; second: ProviderResult }>>;
let bufferedRun: Promise<Outcome<{ lagMs: number; closed: { code: number; reason: string }; messages: Array<Record<string, unknown>>; aheadS: number; bugs: string[] }>>;

beforeAll(async () => {
  fx = await makeFixtures([LONG, MP3, SHORT]);
  rt = await startDeepgramEmulator({ keys: { [KEY]: 'project-rt' }, strictPacing: true });
  emu = await startDeepgramEmulator({ keys: { [KEY]: 'project-1', [CAP_KEY]: 'project-cap' }, projectCaps: { 'project-cap': { prerecorded: 1, live: 1 } } });
  files = createServer((r, res) => {
    const name = (r.url ?? '').split('?')[0]!.slice(1);
    try {
      const path = fx.get(name).path;
      res.writeHead(200, { 'content-type': 'audio/wav', 'content-length': statSync(path).size });
      createReadStream(path).pipe(res);
    } catch {
      res.writeHead(404).end();
    }
  });
  files.listen(0, '127.0.0.1');
  await once(files, 'listening');
  filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;

  const long = fx.get(LONG.name).path;
  const short = fx.get(SHORT.name).path;
  const client = new DeepgramProvider({ apiKey: KEY, baseUrl: rt.url });
  // Our client streaming in real time against the strict emulator.
  streamRun = background(async () => {
    const ctx = sessionContext();
    const result = await client.transcribe(req('stream', audioOf(long, 'audio/wav'), { punctuate: true }), ctx);
    return { result, events: ctx.events };
  });
  // The source stalls 6 s after 1 s of audio: KeepAlive must bridge it.
  stallRun = background(() => client.transcribe(req('stream', stallingAudio(short, 32_000, 6000)), sessionContext()));
  // Raw clients at the real 10 s idle default: one silent, one sending only KeepAlive (does not count before audio).
  idleRuns = background(() =>
    Promise.all(
      ['silent', 'keepalive-only'].map(async (kind) => {
        const c = await rawClient(`${rt.url.replace('http', 'ws')}/v1/listen?encoding=linear16&sample_rate=16000`, { authorization: `Token ${KEY}` });
        const opened = performance.now();
        const timer = kind === 'keepalive-only' ? setInterval(() => c.ws.send(JSON.stringify({ type: 'KeepAlive' })), 2000) : undefined;
        const closed = await c.closed;
        clearInterval(timer);
        return { ...closed, afterMs: performance.now() - opened };
      }),
    ),
  );
  // Default (non-strict) pacing: a client sending a whole file at once is buffered, not closed;
  // audio reaches the recogniser at ≤ 1.25× real time, so the results lag.
  bufferedRun = background(async () => {
    const lenient = await startDeepgramEmulator({ keys: { [KEY]: 'project-lenient' } });
    try {
      const pcm = await decodeFile(long);
      const c = await rawClient(`${lenient.wsUrl}/v1/listen?encoding=linear16&sample_rate=16000`, { authorization: `Token ${KEY}` });
      for (let off = 0; off < pcm.length; off += 3200) c.ws.send(pcm.subarray(off, off + 3200));
      c.ws.send(JSON.stringify({ type: 'CloseStream' }));
      const sentAt = performance.now();
      await c.next((m) => m.type === 'Metadata');
      const lagMs = performance.now() - sentAt;
      const closed = await c.closed;
      const rec = await lenient.waitForSession(() => true);
      return { lagMs, closed, messages: c.messages, aheadS: rec.maxAheadSeconds, bugs: rec.clientBugs };
    } finally {
      await lenient.close();
    }
  });
  // 5xx once, then success: our client throws a retryable error, the caller's retry succeeds.
  retryRun = background(async () => {
    const e5 = await startDeepgramEmulator({ keys: { [KEY]: 'project-5xx' } });
    try {
      const c = new DeepgramProvider({ apiKey: KEY, baseUrl: e5.url });
      e5.faults.fail5xxTimes = 1;
      const first = await c.transcribe(req('stream', audioOf(short, 'audio/wav')), sessionContext()).catch((e: unknown) => e);
      const second = await c.transcribe(req('stream', audioOf(short, 'audio/wav')), sessionContext());
      return { first, second };
    } finally {
      await e5.close();
    }
  });
}, 60_000);

afterAll(async () => {
  await Promise.all([streamRun, stallRun, idleRuns, retryRun, bufferedRun].filter(Boolean));
  await rt?.close();
  await emu?.close();
  files?.close();
  await fx?.cleanup();
});

describe('batch (pre-recorded POST /v1/listen)', () => {
  test('streamed body: real transcript, utterances become segments, bytes streamed as-is', async () => {
    const path = fx.get(LONG.name).path;
    const ctx = sessionContext();
    const client = new DeepgramProvider({ apiKey: KEY, baseUrl: emu.url });
    const { transcript, stats } = await client.transcribe(req('batch', audioOf(path, 'audio/wav'), { smart_format: true, utterances: true, keyterm: ['fox', 'coffee'] }), ctx);
    expect(wordErrorRate(LONG.text, transcriptText(transcript))).toBeLessThanOrEqual(MAX_WER);
    expect(transcript.provider).toBe('deepgram');
    expect(transcript.duration).toBeGreaterThan(8);
    expect(transcript.segments.length).toBeGreaterThan(0);
    expect(transcript.segments[0]!.words[0]!.punctuated_word).toMatch(/^[A-Z]/);
    const rec = emu.requests.find((r) => r.requestId === stats.requestId)!;
    expect(rec).toMatchObject({ status: 200, body: 'binary', bytes: statSync(path).size, project: 'project-1' });
    expect(stats.bytesSent).toBe(statSync(path).size);
    expect(ctx.events[0]).toEqual({ type: 'session:open', requestId: stats.requestId });
  });

  test('mp3 stereo 44.1 kHz without utterances: words of channel 0 split into segments', async () => {
    const client = new DeepgramProvider({ apiKey: KEY, baseUrl: emu.url });
    const { transcript } = await client.transcribe(req('batch', audioOf(fx.get(MP3.name).path, 'audio/mpeg')), sessionContext());
    expect(wordErrorRate(MP3.text, transcriptText(transcript))).toBeLessThanOrEqual(MAX_WER);
    expect(transcript.channels).toBe(1);
    expect(transcript.segments.every((s) => s.words.every((w) => w.punctuated_word === undefined))).toBe(true);
  });

  test('URL body: the emulator fetches the presigned URL itself', async () => {
    const client = new DeepgramProvider({ apiKey: KEY, baseUrl: emu.url, batchBody: 'url' });
    const { transcript, stats } = await client.transcribe(req('batch', audioOf(fx.get(LONG.name).path, 'audio/wav', filesUrl)), sessionContext());
    expect(wordErrorRate(LONG.text, transcriptText(transcript))).toBeLessThanOrEqual(MAX_WER);
    const rec = emu.requests.find((r) => r.requestId === stats.requestId)!;
    expect(rec).toMatchObject({ status: 200, body: 'url', bytes: statSync(fx.get(LONG.name).path).size });
  });

  test('URL body the emulator cannot fetch → 400 REMOTE_CONTENT_ERROR, retryable', async () => {
    const client = new DeepgramProvider({ apiKey: KEY, baseUrl: emu.url, batchBody: 'url' });
    const audio = audioOf(fx.get(LONG.name).path, 'audio/wav', `${filesUrl}/missing`);
    const err = await rejection(client.transcribe(req('batch', audio), sessionContext()));
    expect(err).toBeInstanceOf(ProviderUnavailableError);
    expect(err.message).toMatch(/HTTP 400.*REMOTE_CONTENT_ERROR/);
  });
});

describe('stream (live wss /v1/listen)', () => {
  test('real transcript, paced on absolute deadlines, CloseStream → Metadata → 1000', async () => {
    const { result, events } = await unwrap(streamRun);
    const { transcript, stats } = result;
    expect(wordErrorRate(LONG.text, transcriptText(transcript))).toBeLessThanOrEqual(MAX_WER);
    expect(transcript.duration).toBeCloseTo(stats.bytesSent / 32_000, 2);
    expect(stats.pacing?.chunks).toBe(stats.chunksSent);
    expect(events.some((e) => e.type === 'session:first-result')).toBe(true);
    expect(events.at(-1)).toMatchObject({ type: 'session:closed', code: 1000 });

    const rec = await rt.waitForSession((s) => s.requestId === stats.requestId);
    expect(rec).toMatchObject({ metadataSent: true, closeCode: 1000, closedBy: 'server', clientBugs: [], ignoredFrames: 0 });
    const frames = rt.frames.frames(stats.requestId).filter((f) => f.direction === 'in' && f.kind !== 'http');
    const binary = frames.filter((f) => f.kind === 'binary');
    expect(binary.every((f) => f.size > 0)).toBe(true); // never an empty frame
    expect(binary.slice(0, -1).every((f) => f.size === 3200)).toBe(true); // 100 ms chunks
    const pacing = analysePacing(frames);
    expect(pacing.medianGapMs).toBeGreaterThan(85);
    expect(pacing.medianGapMs).toBeLessThan(115);
    expect(pacing.maxAheadMs).toBeLessThan(500); // never ahead of real time by more than a chunk + jitter
    // CloseStream is the last frame, after the last audio.
    expect(frames.at(-1)).toMatchObject({ kind: 'text', type: 'CloseStream' });
    // The first audio went out right after the open (prefetched before connecting).
    expect(rec.firstAudioAt! - rec.openedAt).toBeLessThan(1000);
  });

  test('a source that stalls 6 s is bridged with KeepAlive text frames', async () => {
    const { transcript, stats } = await unwrap(stallRun);
    expect(wordErrorRate(SHORT.text, transcriptText(transcript))).toBeLessThanOrEqual(MAX_WER);
    const rec = await rt.waitForSession((s) => s.requestId === stats.requestId);
    expect(rec).toMatchObject({ metadataSent: true, closeCode: 1000, clientBugs: [] });
    const frames = rt.frames.frames(stats.requestId).filter((f) => f.direction === 'in' && f.kind !== 'http');
    const keepAlives = frames.filter((f) => f.kind === 'text' && f.type === 'KeepAlive');
    expect(keepAlives.length).toBeGreaterThanOrEqual(1);
    // Every gap between frames stays well inside the 10 s idle window.
    const gaps = frames.slice(1).map((f, i) => f.at - frames[i]!.at);
    expect(Math.max(...gaps)).toBeLessThan(5000);
    expect(frames.filter((f) => f.kind === 'binary').every((f) => f.size > 0)).toBe(true);
  });

  test('5xx at the handshake once: retryable error, then the retry succeeds', async () => {
    const { first, second } = await unwrap(retryRun);
    expect(first).toBeInstanceOf(ProviderUnavailableError);
    expect((first as ScribeError).kind).toBe('retry');
    expect((first as Error).message).toMatch(/HTTP 503/);
    expect(wordErrorRate(SHORT.text, transcriptText(second.transcript))).toBeLessThanOrEqual(MAX_WER);
  });
});

describe('strict emulator rules refuse misbehaving raw clients', () => {
  const wsUrl = (q = 'encoding=linear16&sample_rate=16000') => `${rt.url.replace('http', 'ws')}/v1/listen?${q}`;
  const auth = { authorization: `Token ${KEY}` };

  test('idle 10 s after open (real default) → 1011 NET-0001, KeepAlive before audio does not count', async () => {
    const runs = await unwrap(idleRuns);
    for (const r of runs) {
      expect(r.code).toBe(1011);
      expect(r.reason).toMatch(/NET-0001/);
      expect(r.afterMs).toBeGreaterThan(9500);
      expect(r.afterMs).toBeLessThan(12_000);
    }
  });

  test('sending faster than 1.25× real time is closed (strictPacing)', async () => {
    const pcm = await decodeFile(fx.get(LONG.name).path);
    const c = await rawClient(wsUrl(), auth);
    for (let off = 0; off < pcm.length && c.ws.readyState === c.ws.OPEN; off += 3200) c.ws.send(pcm.subarray(off, off + 3200));
    const closed = await c.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(/faster than real time/);
    expect(c.messages.some((m) => m.type === 'Metadata')).toBe(false);
    const rec = await rt.waitForSession((s) => s.clientBugs.includes('too-fast'));
    expect(rec.closeCode).toBe(1008);
  });

  test('by default a client faster than 1.25× real time is buffered: no close, results lag', async () => {
    const { lagMs, closed, messages, aheadS, bugs } = await unwrap(bufferedRun);
    expect(closed.code).toBe(1000);
    expect(bugs).toEqual([]);
    expect(aheadS).toBeGreaterThan(5); // the whole file arrived at once
    // ~9.3 s of audio, 2 s burst allowance, 1.25×: the last audio is ingested ≥ 5 s after the first.
    expect(lagMs).toBeGreaterThan(4000);
    const finals = messages.filter((m) => m.type === 'Results' && m.is_final) as Array<{ channel: { alternatives: Array<{ transcript: string }> } }>;
    const text = finals.map((m) => m.channel.alternatives[0]!.transcript).join(' ');
    expect(wordErrorRate(LONG.text, text)).toBeLessThanOrEqual(MAX_WER);
  });

  test('an empty binary frame closes the stream and is flagged as a client bug', async () => {
    const c = await rawClient(wsUrl(), auth);
    c.ws.send(Buffer.alloc(3200));
    c.ws.send(Buffer.alloc(0));
    const closed = await c.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(/DATA-0000.*empty/);
    expect(c.messages.some((m) => m.type === 'Metadata')).toBe(false);
    await rt.waitForSession((s) => s.clientBugs.includes('empty-binary-frame'));
  });

  test('closing without CloseStream gives no Metadata', async () => {
    const pcm = await decodeFile(fx.get(SHORT.name).path);
    const c = await rawClient(wsUrl(), auth);
    c.ws.send(pcm.subarray(0, 16_000));
    c.ws.close(1000);
    const closed = await c.closed;
    expect(closed.code).toBe(1000);
    expect(c.messages.some((m) => m.type === 'Metadata')).toBe(false);
    const rec = await rt.waitForSession((s) => s.closedBy === 'client' && s.audioBytes === 16_000);
    expect(rec.metadataSent).toBe(false);
  });

  test('JSON in a binary frame → 1008 DATA-0000; unknown text type → 1011', async () => {
    const a = await rawClient(wsUrl(), auth);
    a.ws.send(Buffer.from(JSON.stringify({ type: 'KeepAlive' })));
    expect(await a.closed).toMatchObject({ code: 1008, reason: expect.stringMatching(/DATA-0000/) });
    const b = await rawClient(wsUrl(), auth);
    b.ws.send(JSON.stringify({ type: 'Flush' }));
    expect((await b.closed).code).toBe(1011);
    const c = await rawClient(wsUrl(), auth);
    c.ws.send('not json');
    expect((await c.closed).code).toBe(1011);
  });

  test('Finalize → from_finalize finals; CloseStream → one Metadata → 1000; frames after it ignored', async () => {
    const pcm = await decodeFile(fx.get(SHORT.name).path);
    const c = await rawClient(wsUrl('encoding=linear16&sample_rate=16000&interim_results=true'), auth);
    // 2 s of audio: within the 2 s burst allowance, so sending it at once is allowed.
    c.ws.send(pcm.subarray(0, 64_000));
    c.ws.send(JSON.stringify({ type: 'Finalize' }));
    const flushed = await c.next((m) => m.type === 'Results' && m.from_finalize === true);
    expect(flushed.is_final).toBe(true);
    c.ws.send(JSON.stringify({ type: 'CloseStream' }));
    c.ws.send(pcm.subarray(64_000, 67_200)); // after CloseStream: ignored
    const closed = await c.closed;
    expect(closed.code).toBe(1000);
    const meta = c.messages.filter((m) => m.type === 'Metadata');
    expect(meta).toHaveLength(1);
    expect(meta[0]).toMatchObject({ transaction_key: 'deprecated', duration: 2, channels: 1 });
    expect(meta[0]!.sha256).toMatch(/^[0-9a-f]{64}$/);
    // Results are contiguous in audio time.
    const finals = c.messages.filter((m) => m.type === 'Results' && m.is_final) as Array<{ start: number; duration: number }>;
    for (let i = 1; i < finals.length; i++) expect(finals[i]!.start).toBeCloseTo(finals[i - 1]!.start + finals[i - 1]!.duration, 2);
    const rec = await rt.waitForSession((s) => s.ignoredFrames > 0);
    expect(rec.metadataSent).toBe(true);
  });

  test('handshake: 101 carries dg-request-id, subprotocol auth accepted, encoding without sample_rate → 400 + dg-error', async () => {
    const sub = new WebSocket(wsUrl('model=nova-3'), ['token', KEY]);
    const upgraded = once(sub, 'upgrade');
    const opened = once(sub, 'open');
    const [res] = (await upgraded) as [IncomingMessage];
    expect(res.headers['dg-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    await opened;
    expect(sub.protocol).toBe('token');
    sub.close();
    await once(sub, 'close');
    const bad = await rawClient(wsUrl('encoding=linear16'), auth).catch((e: { status: number; headers: Record<string, string> }) => e);
    expect(bad).toMatchObject({ status: 400 });
    expect((bad as { headers: Record<string, string> }).headers['dg-error']).toMatch(/sample_rate/);
    expect((bad as { headers: Record<string, string> }).headers['dg-request-id']).toBeTruthy();
    const noScheme = await rawClient(wsUrl('model=nova-3'), { authorization: KEY }).catch((e: { status: number }) => e);
    expect(noScheme).toMatchObject({ status: 401 });
  }, 15_000);
});

describe('errors map to the right classes', () => {
  const short = () => audioOf(fx.get(SHORT.name).path, 'audio/wav');

  test('401 in both modes (all three error-body shapes parse), key never in the message', async () => {
    const bad = new DeepgramProvider({ apiKey: 'wrong-key-123', baseUrl: emu.url });
    for (const shape of ['legacy', 'modern', 'text'] as const) {
      emu.options.errorShape = shape;
      const err = await rejection(bad.transcribe(req('batch', short()), sessionContext()));
      expect(err).toBeInstanceOf(ProviderAuthError);
      expect(err.message).toMatch(/deepgram: HTTP 401.*Invalid credentials/);
      expectNoKey(err, 'wrong-key-123');
    }
    delete emu.options.errorShape;
    const err = await rejection(bad.transcribe(req('stream', short()), sessionContext()));
    expect(err).toBeInstanceOf(ProviderAuthError);
    expect(err.message).toMatch(/HTTP 401 at WebSocket upgrade.*Invalid credentials.*request_id/);
    expectNoKey(err, 'wrong-key-123');
    expect(parseDeepgramError('"plain"')).toEqual({ message: 'plain' });
  });

  test('402 out of credits in both modes', async () => {
    const client = new DeepgramProvider({ apiKey: KEY, baseUrl: emu.url });
    emu.options.outOfCredits = true;
    try {
      expect(await rejection(client.transcribe(req('batch', short()), sessionContext()))).toBeInstanceOf(ProviderPaymentError);
      expect(await rejection(client.transcribe(req('stream', short()), sessionContext()))).toBeInstanceOf(ProviderPaymentError);
    } finally {
      emu.options.outOfCredits = false;
    }
  });

  test('429 pre-recorded: cap held per project, Retry-After honoured; abandoned upload → 422', async () => {
    emu.options.retryAfterSeconds = 7;
    emu.concurrency.reset();
    // Hold one request in flight: a body that never ends.
    const hold = new AbortController();
    let feed!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (feed = c) });
    const admitted = once(emu.events, 'admitted');
    const held = fetch(`${emu.url}/v1/listen`, { method: 'POST', headers: { authorization: `Token ${CAP_KEY}`, 'content-type': 'audio/wav' }, body, duplex: 'half', signal: hold.signal } as RequestInit).catch(() => undefined);
    feed.enqueue(new Uint8Array(1000));
    const [heldRec] = (await admitted) as [{ requestId: string }];
    try {
      const client = new DeepgramProvider({ apiKey: CAP_KEY, baseUrl: emu.url });
      const err = await rejection(client.transcribe(req('batch', short()), sessionContext()));
      expect(err).toBeInstanceOf(ProviderRateLimitedError);
      expect(err.retryAfterMs).toBe(7000);
      expect(err.message).toMatch(/HTTP 429/);
      expect(emu.concurrency.maxConcurrent('project-cap/prerecorded')).toBe(1);
      expect(emu.concurrency.refusals('project-cap/prerecorded')).toBe(1);
    } finally {
      delete emu.options.retryAfterSeconds;
      hold.abort();
      await held;
    }
    const rec = await emu.waitForRequest((r) => r.requestId === heldRec.requestId);
    expect(rec.status).toBe(422);
    expect(emu.concurrency.inFlight('project-cap/prerecorded')).toBe(0);
  });

  test('429 at the live handshake: HTTP status and dg-error surfaced, cap held', async () => {
    emu.concurrency.reset();
    const holder = await rawClient(`${emu.url.replace('http', 'ws')}/v1/listen?model=nova-3`, { authorization: `Token ${CAP_KEY}` });
    try {
      const client = new DeepgramProvider({ apiKey: CAP_KEY, baseUrl: emu.url });
      const err = await rejection(client.transcribe(req('stream', short()), sessionContext()));
      expect(err).toBeInstanceOf(ProviderRateLimitedError);
      expect(err.message).toMatch(/HTTP 429 at WebSocket upgrade.*Too Many Requests/);
      expect(emu.concurrency.maxConcurrent('project-cap/live')).toBe(1);
      expect(emu.concurrency.refusals('project-cap/live')).toBe(1);
    } finally {
      holder.ws.close();
      await holder.closed;
    }
  });

  test('5xx once then success (batch): retryable error first', async () => {
    const client = new DeepgramProvider({ apiKey: KEY, baseUrl: emu.url });
    emu.faults.fail5xxTimes = 1;
    const err = await rejection(client.transcribe(req('batch', short()), sessionContext()));
    expect(err).toBeInstanceOf(ProviderUnavailableError);
    expect(err.kind).toBe('retry');
    const ok = await client.transcribe(req('batch', short()), sessionContext());
    expect(wordErrorRate(SHORT.text, transcriptText(ok.transcript))).toBeLessThanOrEqual(MAX_WER);
  });

  test('413 body too large (counted while streaming, no Content-Length)', async () => {
    const client = new DeepgramProvider({ apiKey: KEY, baseUrl: emu.url });
    emu.options.maxBodyBytes = 50_000;
    try {
      const err = await rejection(client.transcribe(req('batch', audioOf(fx.get(LONG.name).path, 'audio/wav')), sessionContext()));
      expect(err).toBeInstanceOf(InputTooLargeError);
      expect(err.message).toMatch(/HTTP 413/);
    } finally {
      emu.options.maxBodyBytes = 2 * 1024 ** 3;
    }
  });

  test('504 processing cap; never-answering server → timeouts', async () => {
    const client = new DeepgramProvider({ apiKey: KEY, baseUrl: emu.url, timeoutMs: 1500, connectTimeoutMs: 500 });
    emu.options.maxProcessingMs = 1;
    try {
      const err = await rejection(client.transcribe(req('batch', short()), sessionContext()));
      expect(err).toBeInstanceOf(ProviderTimeoutError);
      expect(err.message).toMatch(/HTTP 504/);
    } finally {
      emu.options.maxProcessingMs = 600_000;
    }
    emu.faults.neverAnswer = true;
    try {
      expect(await rejection(client.transcribe(req('batch', short()), sessionContext()))).toBeInstanceOf(ProviderTimeoutError);
      expect(await rejection(client.transcribe(req('stream', short()), sessionContext()))).toBeInstanceOf(ProviderTimeoutError);
    } finally {
      emu.faults.neverAnswer = false;
    }
  });

  test('close 1011 NET-0000 and an abrupt drop mid-stream are retryable', async () => {
    const client = new DeepgramProvider({ apiKey: KEY, baseUrl: emu.url });
    emu.faults.net0000AfterAudioMs = 500;
    const net = await rejection(client.transcribe(req('stream', short()), sessionContext()));
    expect(net).toBeInstanceOf(ProviderUnavailableError);
    expect(net.status).toBe(1011);
    expect(net.message).toMatch(/1011.*NET-0000/);
    emu.faults.dropAfterAudioMs = 500;
    const drop = await rejection(client.transcribe(req('stream', short()), sessionContext()));
    expect(drop).toBeInstanceOf(ProviderUnavailableError);
    expect(drop.status).toBe(1006);
    // Client-bug closes are not retried.
    expect(deepgramCloseError(1008, 'DATA-0000', 'x')).toBeInstanceOf(ProviderRejectedError);
  });

  test('abort: stream session closed by the client, batch request abandoned', async () => {
    const client = new DeepgramProvider({ apiKey: KEY, baseUrl: emu.url });
    const ac = new AbortController();
    const ctx = sessionContext(ac.signal);
    let requestId = '';
    ctx.onEvent = (e) => {
      if (e.type === 'session:open') requestId = e.requestId ?? '';
      if (e.type === 'session:chunk-lateness' && !ac.signal.aborted) setTimeout(() => ac.abort(), 300);
    };
    const err = await rejection(client.transcribe(req('stream', short()), ctx));
    expect(err).toBeInstanceOf(JobCancelledError);
    const rec = await emu.waitForSession((s) => s.requestId === requestId);
    expect(rec).toMatchObject({ closedBy: 'client', metadataSent: false });
    expect(emu.concurrency.inFlight('project-1/live')).toBe(0);

    const ac2 = new AbortController();
    const admitted = once(emu.events, 'admitted');
    const p = client.transcribe(req('batch', short()), sessionContext(ac2.signal));
    const [adm] = (await admitted) as [{ requestId: string }];
    ac2.abort();
    expect(await rejection(p)).toBeInstanceOf(JobCancelledError);
    const abandoned = await emu.waitForRequest((r) => r.requestId === adm.requestId);
    expect([422, 499]).toContain(abandoned.status);
    expect(emu.concurrency.inFlight('project-1/prerecorded')).toBe(0);
  });
});
