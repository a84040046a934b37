/**
 * The OpenAI emulator's own capacity: a transcription request waits in FIFO order for one of the
 * emulator's recognisers (RecogniserPool), gives it back exactly once on every path, stops waiting
 * when its client goes away, and benchmark mode (serviceTimeMs) takes none. Order is read from the
 * emulator's events and the pool's numbers, never from timing: the test itself holds the pool's only
 * recogniser while requests line up behind it.
 */
import { openAsBlob } from 'node:fs';
import { wordErrorRate } from '@scribe-fleet/core';
import { SENTENCES, type SampleSpec } from '../../infra/local/src/samples';
import { RecogniserPool, startOpenAIEmulator, type OpenAIEmulatorHandle, type OpenAIRequestRecord } from '@scribe-fleet/emulators';
import { makeFixtures, type FixtureSet } from './streaming-test-kit';

jest.setTimeout(60_000);
const KEY = 'sk-capacity-0123456789';
const A: SampleSpec = { name: 'a.wav', voice: 'kal16', format: 'wav', text: SENTENCES[0] };
const B: SampleSpec = { name: 'b.wav', voice: 'kal16', format: 'wav', text: SENTENCES[2] };

let fx: FixtureSet;
beforeAll(async () => {
  fx = await makeFixtures([A, B]);
});
afterAll(() => fx?.cleanup());

let emu: OpenAIEmulatorHandle | undefined;
afterEach(async () => {
  await emu?.close();
  emu = undefined;
});

interface Seen {
  event: string;
  name: string;
  inUse: number;
  queued: number;
}

/** Record every capacity event with the pool's numbers at that moment; `name` from the uploaded file. */
function watch(e: OpenAIEmulatorHandle): Seen[] {
  const seen: Seen[] = [];
  for (const event of ['queued', 'recognising', 'recognised', 'done']) {
    e.events.on(event, (r: OpenAIRequestRecord) => seen.push({ event, name: r.file?.filename ?? '?', inUse: e.recognisers.inUse, queued: e.recognisers.queued }));
  }
  return seen;
}

/** Resolve at the first `event` for the request that uploaded `name`. */
function next(e: OpenAIEmulatorHandle, event: string, name: string): Promise<OpenAIRequestRecord> {
  return new Promise((resolve) => {
    const on = (r: OpenAIRequestRecord) => {
      if (r.file?.filename !== name) return;
      e.events.off(event, on);
      resolve(r);
    };
    e.events.on(event, on);
  });
}

async function transcribe(e: OpenAIEmulatorHandle, spec: SampleSpec, signal?: AbortSignal): Promise<{ status: number; text: string }> {
  const form = new FormData();
  form.append('model', 'whisper-1');
  form.append('file', await openAsBlob(fx.get(spec.name).path), spec.name);
  const res = await fetch(`${e.baseUrl}/audio/transcriptions`, { method: 'POST', body: form, headers: { authorization: `Bearer ${KEY}` }, ...(signal ? { signal } : {}) });
  const body = (await res.json()) as { text: string };
  return { status: res.status, text: body.text };
}

async function stats(e: OpenAIEmulatorHandle): Promise<{ recognisers: Record<string, number> }> {
  const res = await fetch(`${e.url}/_emulator/stats`);
  return (await res.json()) as { recognisers: Record<string, number> };
}

test('recognisers: 1 — two concurrent requests both succeed, the second waits for the first to give the recogniser back', async () => {
  emu = await startOpenAIEmulator({ keys: [KEY], recognisers: 1 });
  const e = emu;
  expect(e.recognisers.capacity).toBe(1);
  const seen = watch(e);
  // Hold the only recogniser so both requests line up, A first.
  const hold = await e.recognisers.acquire();
  const aQueued = next(e, 'queued', A.name);
  const a = transcribe(e, A);
  await aQueued;
  const bQueued = next(e, 'queued', B.name);
  const b = transcribe(e, B);
  await bQueued;
  expect(e.recognisers.queued).toBe(2);
  hold();

  const [ra, rb] = await Promise.all([a, b]);
  expect(ra.status).toBe(200);
  expect(rb.status).toBe(200);
  expect(wordErrorRate(A.text, ra.text)).toBeLessThanOrEqual(0.15);
  expect(wordErrorRate(B.text, rb.text)).toBeLessThanOrEqual(0.15);

  const order = seen.filter((s) => s.event !== 'done').map((s) => `${s.event} ${s.name}`);
  expect(order).toEqual([`queued ${A.name}`, `queued ${B.name}`, `recognising ${A.name}`, `recognised ${A.name}`, `recognising ${B.name}`, `recognised ${B.name}`]);
  // B started only with A's recogniser: one in use at a time, nobody left waiting.
  expect(seen.find((s) => s.event === 'recognising' && s.name === B.name)).toMatchObject({ inUse: 1, queued: 0 });
  expect(e.inference.max).toBe(1);
  expect(e.recognisers.maxInUse).toBe(1);
  expect(e.recognisers.inUse).toBe(0);
  expect((await stats(e)).recognisers).toEqual({ capacity: 1, inUse: 0, queued: 0, maxInUse: 1, refused: 0 });
  // DELETE /_emulator/stats resets the high-water mark to what is in use now.
  const reset = (await (await fetch(`${e.url}/_emulator/stats`, { method: 'DELETE' })).json()) as { recognisers: Record<string, number> };
  expect(reset.recognisers).toEqual({ capacity: 1, inUse: 0, queued: 0, maxInUse: 0, refused: 0 });
});

test('a client that goes away while queued leaves the queue and never takes a recogniser', async () => {
  const pool = new RecogniserPool(1);
  emu = await startOpenAIEmulator({ keys: [KEY], recognisers: pool });
  const e = emu;
  expect(e.recognisers).toBe(pool); // a pool passed in is the one used (it can be shared)
  const seen = watch(e);
  const hold = await pool.acquire();
  const ac = new AbortController();
  const queued = next(e, 'queued', A.name);
  const done = next(e, 'done', A.name);
  const gone = transcribe(e, A, ac.signal).catch((err: Error) => err);
  await queued;
  expect(pool.queued).toBe(1);
  ac.abort();
  expect(await gone).toMatchObject({ name: 'AbortError' });
  const rec = await done;
  expect(rec.status).toBe(499);
  expect(pool.queued).toBe(0);
  expect(pool.inUse).toBe(1); // only the test's
  expect(seen.filter((s) => s.name === A.name).map((s) => s.event)).toEqual(['queued', 'done']);
  hold();
  expect(pool.inUse).toBe(0);

  // The next request is served at once, with no queueing.
  const r = await transcribe(e, B);
  expect(r.status).toBe(200);
  expect(seen.filter((s) => s.name === B.name && s.event !== 'done').map((s) => s.event)).toEqual(['recognising', 'recognised']);
  expect(pool.inUse).toBe(0);
});

test('a client that goes away during recognition gives the recogniser back once', async () => {
  emu = await startOpenAIEmulator({ keys: [KEY], recognisers: 1 });
  const e = emu;
  const seen = watch(e);
  const ac = new AbortController();
  const recognising = next(e, 'recognising', A.name);
  const recognised = next(e, 'recognised', A.name);
  const done = next(e, 'done', A.name);
  const gone = transcribe(e, A, ac.signal).catch((err: Error) => err);
  await recognising;
  expect(e.recognisers.inUse).toBe(1);
  ac.abort();
  expect(await gone).toMatchObject({ name: 'AbortError' });
  await Promise.all([recognised, done]);
  expect((await done).status).toBe(499);
  expect(e.recognisers.inUse).toBe(0);
  expect(seen.filter((s) => s.name === A.name && s.event === 'recognised')).toHaveLength(1);
  const r = await transcribe(e, B);
  expect(r.status).toBe(200);
  expect(e.recognisers.inUse).toBe(0);
});

test('benchmark mode (serviceTimeMs) takes no recogniser: answered while the only one is held', async () => {
  emu = await startOpenAIEmulator({ keys: [KEY], recognisers: 1, serviceTimeMs: 0 });
  const e = emu;
  const seen = watch(e);
  const hold = await e.recognisers.acquire();
  try {
    const r = await transcribe(e, A);
    expect(r.status).toBe(200);
    expect(r.text).toBe('');
    expect(seen.filter((s) => s.event !== 'done')).toEqual([]);
    expect(e.recognisers.queued).toBe(0);
  } finally {
    hold();
  }
});
