/**
 * The Fireworks streaming emulator as a product, on a plain `ws` client: segments finalised at endpoints
 * on continuous speech, the guide's field types (string segment ids), the final checkpoint finalising
 * everything received, recogniser capacity (HTTP 429 at the handshake, a pool shared across emulators),
 * and wss. Audio is sent unpaced (`strictPacing: false`): endpointing runs on audio time.
 */
import WebSocket from 'ws';
import { wordErrorRate } from '@scribe-fleet/core';
import { RecogniserPool, startAssemblyAIEmulator, startFireworksEmulator, type FireworksEmulatorHandle, type FireworksEmulatorOptions } from '@scribe-fleet/emulators';
import { rawClient, type RawClient } from '../providers/streaming-test-kit';
import { framesOf, liveSuite, selfSigned, type Speech } from './live-kit';

jest.setTimeout(120_000);

const KEY = 'fw-emulator-key-8c1d';
const PATH = '/v1/audio/transcriptions/streaming';
type Msg = Record<string, unknown>;
type Seg = { id: unknown; text: string; start?: unknown; end?: unknown; words: Array<Record<string, unknown>> };

const suite = liveSuite();

async function emulator(opts: Partial<FireworksEmulatorOptions> = {}): Promise<FireworksEmulatorHandle> {
  return suite.track(await startFireworksEmulator({ apiKeys: [KEY], strictPacing: false, ...opts }));
}

const open = (e: FireworksEmulatorHandle, query = 'language=en&timestamp_granularities=word,segment'): Promise<RawClient> =>
  rawClient(`${e.wsUrl}${PATH}?${query}`, { Authorization: KEY });

/** Stream `audio` in 100 ms frames, then the final checkpoint; the messages up to its echo. */
async function stream(e: FireworksEmulatorHandle, audio: Speech): Promise<Msg[]> {
  const c = await open(e);
  for (const f of framesOf(audio.pcm, 100)) c.ws.send(f);
  c.ws.send(JSON.stringify({ checkpoint_id: 'final' }));
  await c.next((m) => m.checkpoint_id === 'final');
  c.ws.close(1000);
  await c.closed;
  return c.messages;
}

/** The client's state dict (§4.4): each segment id's latest version. */
function stateOf(messages: Msg[]): Map<string, Seg> {
  const state = new Map<string, Seg>();
  for (const m of messages) for (const s of (m.segments as Seg[] | undefined) ?? []) state.set(String(s.id), s);
  return state;
}

const isFinal = (s: Seg) => s.words.length > 0 && s.words.every((w) => w.is_final === true);
const textOf = (state: Map<string, Seg>) => [...state.entries()].sort((a, b) => Number(a[0]) - Number(b[0])).map(([, s]) => s.text).join(' ');

describe('segments', () => {
  test('60 s of continuous speech (250 ms pauses only) → ≥ 10 final segments before the final echo (WER ≤ 15 %); fields typed as in the guide', async () => {
    const speech = suite.speech();
    const e = await emulator();
    const messages = await stream(e, speech);
    const echo = messages.at(-1)!;
    expect(echo).toEqual({ checkpoint_id: 'final' });
    const transcriptions = messages.slice(0, -1);
    const state = stateOf(transcriptions);
    // Every segment is final by the echo: the final checkpoint finalised all audio received.
    expect([...state.values()].every(isFinal)).toBe(true);
    expect(state.size).toBeGreaterThanOrEqual(10);
    expect(wordErrorRate(speech.text, textOf(state))).toBeLessThanOrEqual(0.15);
    // Each segment is about 4 s of speech at the most (1.5 × at the longest): endpoints during speech.
    for (const s of state.values()) expect((s.end as number) - (s.start as number)).toBeLessThanOrEqual(6.5);

    // Types: ids are strings of the segment's number, from "0" up; every field as the guide and reference show.
    const segs = transcriptions.flatMap((m) => m.segments as Seg[]);
    expect(segs.every((s) => typeof s.id === 'string' && /^\d+$/.test(s.id))).toBe(true);
    expect([...state.keys()].sort((a, b) => Number(a) - Number(b))).toEqual([...state.keys()].map((_, i) => String(i)));
    for (const m of transcriptions) {
      expect(Object.keys(m).sort()).toEqual(['language', 'segments', 'task', 'text', 'words']);
      expect(m).toMatchObject({ task: 'transcribe', language: 'en', text: expect.any(String) });
      for (const s of m.segments as Seg[]) {
        expect(typeof s.text).toBe('string');
        if (s.words.length) expect([typeof s.start, typeof s.end]).toEqual(['number', 'number']);
      }
      for (const w of m.words as Array<Record<string, unknown>>) {
        expect(w).toEqual({
          word: expect.any(String),
          language: 'en',
          probability: expect.any(Number),
          hallucination_score: expect.any(Number),
          is_final: expect.any(Boolean),
          start: expect.any(Number),
          end: expect.any(Number),
        });
      }
    }
  });

  test('a pause of pauseMs finalises the segment: one final segment per sentence', async () => {
    const four = suite.speech().first(4);
    const e = await emulator({ pauseMs: 200, maxSegmentMs: 30_000 });
    const state = stateOf((await stream(e, four)).slice(0, -1));
    expect(state.size).toBe(4);
    for (const [i, s] of [...state.values()].entries()) expect(wordErrorRate(four.sentences[i]!.text, s.text)).toBeLessThanOrEqual(0.25);
  });
});

describe('capacity and transport', () => {
  test('at capacity the handshake gets HTTP 429 with Retry-After (counted); a pool shared with another emulator counts both', async () => {
    const pool = new RecogniserPool(1);
    const e = await emulator({ recognisers: pool, retryAfterSeconds: 3 });
    const holder = await open(e);
    await expect(open(e)).rejects.toMatchObject({ status: 429, headers: expect.objectContaining({ 'retry-after': '3' }) });
    expect(pool.refused).toBe(1);
    expect(e.concurrency.refusals(KEY)).toBe(1);
    const stats = (await (await fetch(`${e.url}/_emulator/stats`)).json()) as { keys: Record<string, { refused: number; inFlight: number }> };
    expect(stats.keys[KEY]).toMatchObject({ refused: 1, inFlight: 1 });

    // The holder closes: its recogniser comes back once, and the next session is served.
    const closed = new Promise((resolve) => e.events.once('session-closed', resolve));
    holder.ws.close(1000);
    await closed;
    expect(pool.inUse).toBe(0);

    // The same pool behind an AssemblyAI emulator: its session takes the one recogniser, Fireworks refuses.
    const aai = suite.track(await startAssemblyAIEmulator({ apiKeys: [KEY], recognisers: pool }));
    const other = await rawClient(`${aai.wsUrl}/v3/ws?speech_model=universal-streaming-english`, { Authorization: KEY });
    await other.next((m) => m.type === 'Begin');
    await expect(open(e)).rejects.toMatchObject({ status: 429 });
    other.ws.close();
    await other.closed;
    await new Promise((resolve) => (pool.inUse === 0 ? resolve(null) : aai.events.once('session-closed', resolve)));
    const served = await open(e);
    served.ws.close();
    await served.closed;
  });

  test('tls: the emulator serves wss', async () => {
    const tls = await selfSigned();
    const e = await emulator({ tls });
    expect(e.wsUrl).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
    const ws = new WebSocket(`${e.wsUrl}${PATH}?language=en`, { headers: { Authorization: KEY }, ca: tls.cert });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const echo = new Promise<Msg>((resolve) => ws.on('message', (d) => resolve(JSON.parse(d.toString()) as Msg)));
    ws.send(Buffer.alloc(3200));
    ws.send(JSON.stringify({ checkpoint_id: 'final' }));
    expect(await echo).toEqual({ checkpoint_id: 'final' });
    ws.close();
  });
});
