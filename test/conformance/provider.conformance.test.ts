/**
 * The Provider port's conformance suite, run against every adapter/emulator pair: the local recogniser
 * and the four hosted-provider clients, each against its strict emulator. Every adapter must give the
 * same normalised transcript model, the same session events, the same error classes and the same
 * cancellation behaviour.
 */
import { ProviderAuthError, ProviderRateLimitedError, ScribeError, wordErrorRate, type Mode, type Provider, type ProviderResult, type SessionEvent } from '@scribe-fleet/core';
import { LocalProvider } from '@scribe-fleet/core/adapters/local-provider';
import { AssemblyAIProvider } from '@scribe-fleet/core/adapters/providers/assemblyai';
import { DeepgramProvider } from '@scribe-fleet/core/adapters/providers/deepgram';
import { FireworksProvider } from '@scribe-fleet/core/adapters/providers/fireworks';
import { OpenAIProvider } from '@scribe-fleet/core/adapters/providers/openai';
import { systemClock } from '@scribe-fleet/core/adapters/system-clock';
import { startEmulator, type EmulatorName } from '@scribe-fleet/emulators';
import type { EmulatorHandle } from '@scribe-fleet/emulators';
import { SENTENCES } from '../../infra/local/src/samples';
import { fileAudioInput, makeFixtures, type FixtureSet } from '../providers/streaming-test-kit';

jest.setTimeout(120_000);

const KEY = 'conformance-key-3f9a';
type Emu = EmulatorHandle & { wsUrl?: string; baseUrl?: string };

interface Pair {
  name: string;
  emulator?: EmulatorName;
  modes: Mode[];
  model: string;
  make(emu: Emu | undefined, key: string): Provider;
}

const PAIRS: Pair[] = [
  { name: 'local', modes: ['batch', 'stream'], model: 'pocketsphinx-en-us', make: () => new LocalProvider() },
  { name: 'deepgram', emulator: 'deepgram', modes: ['batch', 'stream'], model: 'nova-3', make: (e, key) => new DeepgramProvider({ apiKey: key, baseUrl: e!.url }) },
  { name: 'assemblyai', emulator: 'assemblyai', modes: ['stream'], model: 'universal-streaming-english', make: (e, key) => new AssemblyAIProvider({ apiKey: key, baseUrl: e!.wsUrl! }) },
  { name: 'fireworks', emulator: 'fireworks', modes: ['stream'], model: 'fireworks-asr-large', make: (e, key) => new FireworksProvider({ apiKey: key, baseUrl: e!.wsUrl! }) },
  { name: 'openai', emulator: 'openai', modes: ['batch'], model: 'whisper-1', make: (e, key) => new OpenAIProvider({ apiKey: key, baseUrl: e!.baseUrl! }) },
];

const TEXT = SENTENCES[1];
let fixtures: FixtureSet;
const emulators = new Map<string, Emu>();
const capped = new Map<string, Emu>();
const results = new Map<string, { result?: ProviderResult; error?: unknown; events: SessionEvent[] }>();

function run(provider: Provider, mode: Mode, model: string, signal = new AbortController().signal, events: SessionEvent[] = []) {
  return provider.transcribe(
    { mode, model, options: {}, audio: fileAudioInput(fixtures.get('conformance.wav').path) },
    { signal, clock: systemClock, onEvent: (e) => events.push(e) },
  );
}

beforeAll(async () => {
  fixtures = await makeFixtures([{ name: 'conformance.wav', voice: 'kal16', format: 'wav', text: TEXT }]);
  for (const p of PAIRS) {
    if (!p.emulator) continue;
    emulators.set(p.name, (await startEmulator(p.emulator, { port: 0, keys: [KEY], lenient: false })) as Emu);
    capped.set(p.name, (await startEmulator(p.emulator, { port: 0, keys: [KEY], cap: 0, lenient: false })) as Emu);
  }
  // Every (pair, mode) session runs at once: streams take real time.
  await Promise.all(
    PAIRS.flatMap((p) =>
      p.modes.map(async (mode) => {
        const events: SessionEvent[] = [];
        const entry: { result?: ProviderResult; error?: unknown; events: SessionEvent[] } = { events };
        results.set(`${p.name}/${mode}`, entry);
        try {
          entry.result = await run(p.make(emulators.get(p.name), KEY), mode, p.model, undefined, events);
        } catch (e) {
          entry.error = e;
        }
      }),
    ),
  );
});

afterAll(async () => {
  for (const e of [...emulators.values(), ...capped.values()]) await e.close();
  await fixtures?.cleanup();
});

describe.each(PAIRS.flatMap((p) => p.modes.map((mode) => [`${p.name} ${mode}`, p, mode] as const)))('%s', (_label, pair, mode) => {
  const entry = () => results.get(`${pair.name}/${mode}`)!;

  it('transcribes known speech into the normalised model (WER ≤ 15 %)', () => {
    const { result, error } = entry();
    expect(error).toBeUndefined();
    const t = result!.transcript;
    expect(t.provider).toBe(pair.name);
    expect(t.requestId).toEqual(expect.any(String));
    expect(t.requestId.length).toBeGreaterThan(0);
    expect(t.duration).toBeGreaterThan(4);
    expect(t.duration).toBeLessThan(8);
    const text = t.segments.map((s) => s.text).join(' ');
    expect(wordErrorRate(TEXT, text)).toBeLessThanOrEqual(0.15);
  });

  it('gives words in audio time: ordered, inside the audio, with confidences in [0, 1]', () => {
    const t = entry().result!.transcript;
    const words = t.segments.flatMap((s) => s.words);
    expect(words.length).toBeGreaterThan(5);
    for (let i = 0; i < words.length; i++) {
      const w = words[i]!;
      expect(w.start).toBeGreaterThanOrEqual(0);
      expect(w.end).toBeGreaterThanOrEqual(w.start);
      expect(w.end).toBeLessThanOrEqual(t.duration + 0.1);
      expect(w.confidence).toBeGreaterThanOrEqual(0);
      expect(w.confidence).toBeLessThanOrEqual(1);
      if (i > 0) expect(w.start).toBeGreaterThanOrEqual(words[i - 1]!.start);
    }
  });

  it('reports the session: open with a request id, at least one final, stats of what was sent', () => {
    const { result, events } = entry();
    expect(events[0]).toMatchObject({ type: 'session:open' });
    expect(events.some((e) => e.type === 'session:final')).toBe(true);
    expect(result!.stats.requestId.length).toBeGreaterThan(0);
    expect(result!.stats.bytesSent).toBeGreaterThan(0);
    expect(result!.stats.finalResults).toBeGreaterThan(0);
    if (mode === 'stream') expect(result!.stats.pacing?.earlySends).toBe(0);
  });

  it('stops promptly when aborted, and leaves nothing in flight at the provider', async () => {
    const ctrl = new AbortController();
    const events: SessionEvent[] = [];
    const p = run(pair.make(emulators.get(pair.name), KEY), mode, pair.model, ctrl.signal, events);
    setTimeout(() => ctrl.abort(new Error('cancelled by test')), 700);
    const t0 = Date.now();
    await expect(p).rejects.toBeTruthy();
    expect(Date.now() - t0).toBeLessThan(5000);
    const emu = emulators.get(pair.name);
    if (emu) {
      // Deepgram counts per project; the others per key. Either way nothing may stay in flight
      // once the provider has seen the client go (a close travels asynchronously: allow 3 s).
      const keys = [KEY, 'project-1', `project-1/${mode === 'batch' ? 'prerecorded' : 'live'}`];
      const inFlight = () => keys.reduce((n, k) => n + emu.concurrency.inFlight(k), 0);
      const deadline = Date.now() + 3000;
      while (inFlight() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(inFlight()).toBe(0);
    }
  });

  if (pair.emulator) {
    it('maps a bad key to PROVIDER_AUTH (unrecoverable), without the key in the message', async () => {
      const err = await run(pair.make(emulators.get(pair.name), 'wrong-key-7777'), mode, pair.model).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProviderAuthError);
      expect((err as ScribeError).kind).toBe('unrecoverable');
      expect((err as Error).message).not.toContain('wrong-key-7777');
    });

    it('maps "over the concurrency limit" to PROVIDER_RATE_LIMITED', async () => {
      const err = await run(pair.make(capped.get(pair.name), KEY), mode, pair.model).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProviderRateLimitedError);
      expect((err as ScribeError).kind).toBe('rate_limit');
    });
  }
});
