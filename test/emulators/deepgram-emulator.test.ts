/**
 * The Deepgram emulator as a product (issue 13): endpointing like the service on a minute of
 * continuous synthesised speech (finals every few seconds, `speech_final` at the pauses, the
 * transcript right), `endpointing=false`, UtteranceEnd after word gaps, the idle close that finalises
 * what was heard, the emulator's own recogniser capacity (a live stream refused with 429, a
 * pre-recorded request queued), a recogniser given back on every end path, and TLS for REST + WSS.
 *
 * The streams run at 4× real time: the test emulators raise `maxRealtimeFactor` (lenient pacing),
 * which only changes how fast audio reaches the recogniser, not the stream-time results.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { wordErrorRate } from '@scribe-fleet/core';
import { startDeepgramEmulator, type DeepgramEmulatorHandle } from '@scribe-fleet/emulators';
import { SENTENCES, type SampleSpec } from '../../infra/local/src/samples';
import { decodeFile, makeFixtures, makeJoinedFixture, rawClient, type FixtureSet, type RawClient } from '../providers/streaming-test-kit';

const KEY = 'dg-test-key';
const AUTH = { authorization: `Token ${KEY}` };
const MAX_WER = 0.15;
const FACTOR = 4;
/** Fifteen sentences in one flite run: only the short pauses flite makes between sentences (~0.3 s). */
const CONTINUOUS_TEXT = [...SENTENCES, ...[...SENTENCES].reverse(), SENTENCES[0]].join('. ');
const CONTINUOUS: SampleSpec = { name: 'continuous.wav', voice: 'kal16', format: 'wav', text: CONTINUOUS_TEXT };
const SHORT: SampleSpec = { name: 'short.wav', voice: 'kal16', format: 'wav', text: SENTENCES[2] };
const GAPPED = [SENTENCES[0], SENTENCES[2], SENTENCES[4]];

type Msg = Record<string, unknown> & { at: number };
interface Result extends Msg {
  start: number;
  duration: number;
  is_final: boolean;
  speech_final: boolean;
  from_finalize: boolean;
  channel: { alternatives: Array<{ transcript: string; words: Array<{ word: string; start: number; end: number }> }> };
}

let fx: FixtureSet;
let continuousPcm: Buffer;
let shortPcm: Buffer;
let gappedPcm: Buffer;

beforeAll(async () => {
  fx = await makeFixtures([CONTINUOUS, SHORT]);
  const gapped = await makeJoinedFixture(
    GAPPED.map((text, i) => ({ name: `g${i}.wav`, voice: 'kal16', format: 'wav', text })),
    join(fx.dir, 'gapped.wav'),
  );
  [continuousPcm, shortPcm, gappedPcm] = await Promise.all([decodeFile(fx.get(CONTINUOUS.name).path), decodeFile(fx.get(SHORT.name).path), decodeFile(gapped)]);
}, 60_000);

afterAll(async () => {
  await fx?.cleanup();
});

// ---- helpers -------------------------------------------------------------------------------------------

/** A raw client whose messages also carry their arrival time (performance.now()). */
async function client(emu: DeepgramEmulatorHandle, query: string): Promise<RawClient & { timed: Msg[] }> {
  const c = await rawClient(`${emu.wsUrl}/v1/listen?${query}`, AUTH);
  const timed: Msg[] = [];
  c.ws.on('message', (data, isBinary) => {
    if (!isBinary) timed.push({ ...(JSON.parse(data.toString()) as Record<string, unknown>), at: performance.now() });
  });
  return Object.assign(c, { timed });
}

/** 100 ms chunks on absolute deadlines at `factor` × real time. */
async function streamPaced(ws: WebSocket, pcm: Buffer, factor: number): Promise<void> {
  const t0 = performance.now();
  for (let off = 0, i = 0; off < pcm.length; off += 3200, i++) {
    const wait = t0 + (i * 100) / factor - performance.now();
    if (wait > 0) await sleep(wait);
    ws.send(pcm.subarray(off, off + 3200));
  }
}

/** Stream it, CloseStream, and wait for the server's close. */
async function transcribeLive(emu: DeepgramEmulatorHandle, query: string, pcm: Buffer): Promise<{ finals: Result[]; timed: Msg[]; code: number }> {
  const c = await client(emu, `encoding=linear16&sample_rate=16000&${query}`);
  await streamPaced(c.ws, pcm, FACTOR);
  c.ws.send(JSON.stringify({ type: 'CloseStream' }));
  const { code } = await c.closed;
  const finals = c.timed.filter((m): m is Result => m.type === 'Results' && m.is_final === true);
  return { finals, timed: c.timed, code };
}

const textOf = (rs: Result[]) =>
  rs
    .map((r) => r.channel.alternatives[0]!.transcript)
    .filter(Boolean)
    .join(' ');
const lastWordEnd = (r: Result) => r.channel.alternatives[0]!.words.at(-1)?.end;

/** Runs of 10 ms frames below RMS 300 (the audio's own pauses), at least `minMs` long, in seconds. */
function pauses(pcm: Buffer, minMs: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let runStart = -1;
  const frames = Math.floor(pcm.length / 320);
  for (let f = 0; f <= frames; f++) {
    let quiet = false;
    if (f < frames) {
      let sum = 0;
      for (let i = 0; i < 160; i++) sum += pcm.readInt16LE(f * 320 + i * 2) ** 2;
      quiet = sum / 160 < 300 * 300;
    }
    if (quiet && runStart < 0) runStart = f;
    if (!quiet && runStart >= 0) {
      if ((f - runStart) * 10 >= minMs) out.push([runStart / 100, f / 100]);
      runStart = -1;
    }
  }
  return out;
}

/** Wait for `pred`, polling; fails with `what` after `timeoutMs`. */
async function until(pred: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!pred()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function postListen(url: string, body: Buffer, signal?: AbortSignal): Promise<{ status: number; json: unknown; at: number }> {
  return fetch(`${url}/v1/listen?model=nova-3`, { method: 'POST', headers: { ...AUTH, 'content-type': 'audio/wav' }, body, ...(signal ? { signal } : {}) }).then(async (res) => ({
    status: res.status,
    json: await res.json(),
    at: performance.now(),
  }));
}

const restTranscript = (json: unknown) => (json as { results: { channels: Array<{ alternatives: Array<{ transcript: string }> }> } }).results.channels[0]!.alternatives[0]!.transcript;

// ---- endpointing ---------------------------------------------------------------------------------------

describe('endpointing like the service', () => {
  let emu: DeepgramEmulatorHandle;
  beforeAll(async () => {
    emu = await startDeepgramEmulator({ keys: { [KEY]: 'project-1' }, maxRealtimeFactor: FACTOR });
  });
  afterAll(() => emu?.close());

  test('a minute of continuous speech: ≥ 10 finals, speech_final at the pauses, contiguous, transcript right', async () => {
    const seconds = continuousPcm.length / 32_000;
    expect(seconds).toBeGreaterThan(55);
    const { finals, timed, code } = await transcribeLive(emu, 'interim_results=true&utterance_end_ms=1000', continuousPcm);
    expect(code).toBe(1000);
    expect(finals.length).toBeGreaterThanOrEqual(10);
    expect(Math.max(...finals.map((f) => f.duration))).toBeLessThan(8);
    expect(wordErrorRate(CONTINUOUS_TEXT, textOf(finals))).toBeLessThanOrEqual(MAX_WER);
    // start/duration contiguous from 0 in audio time.
    expect(finals[0]!.start).toBe(0);
    for (let i = 1; i < finals.length; i++) expect(finals[i]!.start).toBeCloseTo(finals[i - 1]!.start + finals[i - 1]!.duration, 2);

    // Every speech_final final ends where the audio pauses (≥ 140 ms of silence right after its last word).
    const audioPauses = pauses(continuousPcm, 140);
    const speechFinals = finals.filter((f) => f.speech_final && lastWordEnd(f) !== undefined);
    expect(speechFinals.length).toBeGreaterThanOrEqual(8);
    for (const f of speechFinals) {
      const end = lastWordEnd(f)!;
      expect({ end, pause: audioPauses.find(([a]) => a >= end - 0.3 && a <= end + 0.3) ?? null }).toEqual({ end, pause: expect.any(Array) });
    }
    // And the sentence pauses (≥ 200 ms inside the speech) are nearly all speech_final endpoints.
    const sentencePauses = pauses(continuousPcm, 200).filter(([a, b]) => a > 1 && b < seconds - 1);
    const endpointed = sentencePauses.filter(([a, b]) => speechFinals.some((f) => lastWordEnd(f)! >= a - 0.3 && lastWordEnd(f)! <= b));
    expect(endpointed.length).toBeGreaterThanOrEqual(Math.ceil(sentencePauses.length * 0.8));

    // No pause reaches 1 s: no UtteranceEnd. One Metadata with the whole duration.
    expect(timed.filter((m) => m.type === 'UtteranceEnd')).toHaveLength(0);
    const meta = timed.filter((m) => m.type === 'Metadata');
    expect(meta).toHaveLength(1);
    expect(meta[0]!.duration).toBeCloseTo(seconds, 2);
  });

  test('endpointing=false: no speech_final, continuous speech still finalised every few seconds', async () => {
    const pcm = continuousPcm.subarray(0, 20 * 32_000);
    const { finals } = await transcribeLive(emu, 'endpointing=false', pcm);
    expect(finals.some((f) => f.speech_final)).toBe(false);
    const worded = finals.filter((f) => lastWordEnd(f) !== undefined);
    expect(worded.length).toBeGreaterThanOrEqual(3);
    // Max-length cuts at a word gap after 4 s, at most 6 s (1.5 ×) of speech each.
    for (const f of worded.slice(0, -1)) expect(f.duration).toBeLessThan(7);
  });

  test('UtteranceEnd after each 1.2 s gap between sentences, with the last final word end', async () => {
    const { finals, timed } = await transcribeLive(emu, 'interim_results=true&utterance_end_ms=1000&endpointing=300', gappedPcm);
    expect(wordErrorRate(GAPPED.join(' '), textOf(finals))).toBeLessThanOrEqual(MAX_WER);
    expect(finals.filter((f) => f.speech_final).length).toBeGreaterThanOrEqual(GAPPED.length - 1);
    const ends = timed.filter((m) => m.type === 'UtteranceEnd');
    // Two gaps between three sentences; the 0.6 s of silence at the end is too short.
    expect(ends).toHaveLength(GAPPED.length - 1);
    for (const e of ends) {
      expect(e.channel).toEqual([0, 1]);
      const i = timed.indexOf(e);
      const before = timed.slice(0, i).filter((m): m is Result => m.type === 'Results' && m.is_final === true && lastWordEnd(m as Result) !== undefined);
      expect(e.last_word_end).toBe(lastWordEnd(before.at(-1)!));
    }
  });
});

// ---- idle close ----------------------------------------------------------------------------------------

test('the idle close (NET-0001) sends the finals of the audio heard before it closes', async () => {
  const emu = await startDeepgramEmulator({ keys: { [KEY]: 'project-1' }, idleTimeoutMs: 1500 });
  try {
    const c = await client(emu, 'encoding=linear16&sample_rate=16000&interim_results=true');
    // 0.6 s of silence and 1.8 s of speech, cut mid-sentence: nothing has ended an utterance yet.
    const head = shortPcm.subarray(0, Math.round(2.4 * 32_000));
    await streamPaced(c.ws, head, 2);
    const lastAudioAt = performance.now();
    const closed = await c.closed;
    expect(closed.code).toBe(1011);
    expect(closed.reason).toMatch(/NET-0001/);
    const finals = c.timed.filter((m): m is Result => m.type === 'Results' && m.is_final === true && lastWordEnd(m as Result) !== undefined);
    expect(finals.length).toBeGreaterThanOrEqual(1);
    const last = finals.at(-1)!;
    // Sent at the idle close, covering the speech up to where the audio stopped.
    expect(last.at - lastAudioAt).toBeGreaterThan(1400);
    expect(lastWordEnd(last)!).toBeGreaterThan(1.8);
    expect(last).toMatchObject({ is_final: true, speech_final: false, from_finalize: false });
    // What was heard is the start of the sentence.
    const heard = textOf(finals).split(' ');
    expect(wordErrorRate(SHORT.text.split(' ').slice(0, heard.length).join(' '), heard.join(' '))).toBeLessThanOrEqual(0.34);
    expect(c.timed.some((m) => m.type === 'Metadata')).toBe(false);
    const rec = await emu.waitForSession((s) => s.closeCode === 1011);
    expect(rec.clientBugs).toContain('idle');
    expect(emu.recognisers.inUse).toBe(0);
  } finally {
    await emu.close();
  }
});

// ---- recogniser capacity -------------------------------------------------------------------------------

describe('recogniser capacity (recognisers: 1)', () => {
  let emu: DeepgramEmulatorHandle;
  beforeAll(async () => {
    emu = await startDeepgramEmulator({ keys: { [KEY]: 'project-1' }, recognisers: 1, retryAfterSeconds: 3 });
  });
  afterAll(() => emu?.close());

  test('a second live stream gets 429 like over-concurrency; a pre-recorded request waits, then completes', async () => {
    const a = await client(emu, 'encoding=linear16&sample_rate=16000');
    a.ws.send(shortPcm.subarray(0, 32_000));
    const refused = (await rawClient(`${emu.wsUrl}/v1/listen?encoding=linear16&sample_rate=16000`, AUTH).catch((e: unknown) => e)) as { status: number; headers: Record<string, string> };
    expect(refused.status).toBe(429);
    expect(refused.headers['retry-after']).toBe('3');
    expect(refused.headers['dg-error']).toMatch(/Too Many Requests/);
    expect(refused.headers['dg-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(emu.recognisers.refused).toBe(1);
    const stats = (await (await fetch(`${emu.url}/_emulator/stats`)).json()) as { keys: Record<string, { refused: number; inFlight: number }> };
    expect(stats.keys['project-1/live']).toMatchObject({ refused: 1, inFlight: 1 });

    const wav = await readFile(fx.get(SHORT.name).path);
    const rest = postListen(emu.url, wav);
    await until(() => emu.recognisers.queued === 1, 'the request to queue for the recogniser');
    const queued = emu.requests.at(-1)!;
    expect(queued.status).toBeUndefined();

    a.ws.send(JSON.stringify({ type: 'CloseStream' }));
    await a.closed;
    const liveClosedAt = performance.now();
    const answer = await rest;
    expect(answer.status).toBe(200);
    expect(answer.at).toBeGreaterThan(liveClosedAt);
    expect(wordErrorRate(SHORT.text, restTranscript(answer.json))).toBeLessThanOrEqual(MAX_WER);
    expect(queued).toMatchObject({ status: 200, queuedMs: expect.any(Number) });
    expect(queued.queuedMs!).toBeGreaterThan(0);
    expect(emu.recognisers).toMatchObject({ inUse: 0, queued: 0, maxInUse: 1 });
  });

  test('the recogniser comes back on every end path: server close, client drop, fault drop, client gone while queued', async () => {
    const free = () => until(() => emu.recognisers.inUse === 0, 'the recogniser to be free');
    // Server close on a client bug (JSON in a binary frame → 1008).
    const x = await client(emu, 'encoding=linear16&sample_rate=16000');
    x.ws.send(Buffer.from(JSON.stringify({ type: 'KeepAlive' })));
    expect((await x.closed).code).toBe(1008);
    await free();
    // The client goes away without a close frame.
    const y = await client(emu, 'encoding=linear16&sample_rate=16000');
    y.ws.send(shortPcm.subarray(0, 16_000));
    y.ws.terminate();
    await free();
    // The emulator drops the socket (fault).
    emu.faults.dropAfterAudioMs = 100;
    const z = await client(emu, 'encoding=linear16&sample_rate=16000');
    z.ws.send(shortPcm.subarray(0, 16_000));
    expect((await z.closed).code).toBe(1006);
    await free();
    // A queued pre-recorded request whose client leaves: recorded, taken out of the queue.
    const v = await client(emu, 'encoding=linear16&sample_rate=16000');
    const ac = new AbortController();
    const abandoned = postListen(emu.url, await readFile(fx.get(SHORT.name).path), ac.signal).catch((e: unknown) => e);
    await until(() => emu.recognisers.queued === 1, 'the request to queue');
    ac.abort();
    await abandoned;
    const rec = await emu.waitForRequest((r) => r.status === 422 || r.status === 499);
    expect(rec.queuedMs).toBeUndefined();
    expect(emu.recognisers.queued).toBe(0);
    v.ws.close();
    await v.closed;
    await free();
    expect(emu.recognisers.maxInUse).toBe(1);
  });

  test('fixed service time (benchmark mode) takes no recogniser', async () => {
    const bench = await startDeepgramEmulator({ keys: { [KEY]: 'project-1' }, recognisers: 1, serviceTimeMs: { prerecorded: 200 } });
    try {
      const holder = await client(bench, 'encoding=linear16&sample_rate=16000');
      const answer = await postListen(bench.url, Buffer.alloc(32_000, 1));
      expect(answer.status).toBe(200);
      expect(bench.recognisers).toMatchObject({ inUse: 1, queued: 0 });
      holder.ws.close();
      await holder.closed;
    } finally {
      await bench.close();
    }
    expect(bench.recognisers.inUse).toBe(0);
  });
});

// ---- TLS -----------------------------------------------------------------------------------------------

test('tls: REST over https and the live stream over wss on one port', async () => {
  const keyPath = join(fx.dir, 'key.pem');
  const certPath = join(fx.dir, 'cert.pem');
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', keyPath, '-out', certPath,
  ]);
  const ca = await readFile(certPath);
  const emu = await startDeepgramEmulator({ keys: { [KEY]: 'project-1' }, tls: { key: await readFile(keyPath), cert: ca } });
  try {
    expect(emu.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(emu.wsUrl).toBe(emu.url.replace('https', 'wss'));
    const wav = await readFile(fx.get(SHORT.name).path);
    const rest = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${emu.url}/v1/listen?model=nova-3`, { method: 'POST', ca, headers: { ...AUTH, 'content-type': 'audio/wav' } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end(wav);
    });
    expect(rest.status).toBe(200);
    expect(wordErrorRate(SHORT.text, restTranscript(JSON.parse(rest.body)))).toBeLessThanOrEqual(MAX_WER);

    const ws = new WebSocket(`${emu.wsUrl}/v1/listen?encoding=linear16&sample_rate=16000`, { headers: AUTH, ca });
    const messages: Array<Record<string, unknown>> = [];
    ws.on('message', (d) => messages.push(JSON.parse(d.toString()) as Record<string, unknown>));
    await once(ws, 'open');
    ws.send(shortPcm.subarray(0, 32_000));
    ws.send(JSON.stringify({ type: 'CloseStream' }));
    const [code] = (await once(ws, 'close')) as [number];
    expect(code).toBe(1000);
    expect(messages.at(-1)).toMatchObject({ type: 'Metadata', duration: 1, channels: 1 });
  } finally {
    await emu.close();
  }
});
