/**
 * The finalize handshake of the three streaming clients (AssemblyAI Terminate → Termination,
 * Fireworks final checkpoint → echo, Deepgram CloseStream → Metadata → close) is bounded by progress
 * (ws-session `withinProgress`). The session is stuck only after FINALIZE_IDLE_MS with no message of
 * any kind from the provider. The whole wait is capped at FINALIZE_IDLE_MS + FINALIZE_MS_PER_AUDIO_SECOND
 * × the audio seconds sent that no final result covers.
 *
 * The deadline arithmetic runs on the project's VirtualClock (exact). The clients run against small
 * fake providers on 127.0.0.1 with a 600 ms idle bound: one keeps sending results every 200 ms for
 * several idle periods and must not time out, one goes silent and must time out after about the
 * idle time, and one keeps talking forever and must hit the total cap.
 */
import { EventEmitter, once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { WebSocketServer, type WebSocket } from 'ws';
import { loadConfig, ProviderTimeoutError, ScribeError, VirtualClock, type Provider, type ProviderResult } from '@scribe-fleet/core';
import { AssemblyAIProvider } from '@scribe-fleet/core/adapters/providers/assemblyai';
import { DeepgramProvider } from '@scribe-fleet/core/adapters/providers/deepgram';
import { FireworksProvider } from '@scribe-fleet/core/adapters/providers/fireworks';
import { createProviders } from '@scribe-fleet/core/adapters/providers/registry';
import { finalizeTotalMs, ProgressDeadline, withinProgress } from '@scribe-fleet/core/adapters/providers/ws-session';
import { sessionContext, toneInput } from './streaming-test-kit';

jest.setTimeout(60_000);

const IDLE_MS = 600;
const AUDIO_SECONDS = 0.3;

// ---- the deadline arithmetic on the VirtualClock -------------------------------------------------

/**
 * A VirtualClock whose sleeps run the events scheduled before their deadline first (in time order),
 * so "a frame every 300 ms" can be simulated exactly while withinProgress sleeps on the clock.
 */
class ScheduledClock extends VirtualClock {
  private events: Array<{ at: number; fn: () => void }> = [];
  at(time: number, fn: () => void): void {
    this.events.push({ at: time, fn });
    this.events.sort((a, b) => a.at - b.at);
  }
  override async sleepUntil(deadlineMs: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      const next = this.events[0];
      if (!next || next.at > deadlineMs) break;
      this.events.shift();
      if (next.at > this.now()) this.advance(next.at - this.now());
      next.fn();
      await new Promise((resolve) => setImmediate(resolve)); // let whatever the event settled run first
    }
    await super.sleepUntil(deadlineMs, signal);
  }
}

/** A provider simulation on `clock`: `frames` are arrival times of messages; `doneAt` resolves the wait. */
function simulate(clock: ScheduledClock, frames: number[], doneAt?: number) {
  const listeners = new Set<() => void>();
  for (const t of frames) clock.at(t, () => listeners.forEach((l) => l()));
  const done = new Promise<string>((resolve) => {
    if (doneAt !== undefined) clock.at(doneAt, () => resolve('done'));
  });
  return {
    done,
    activity: (fn: () => void) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
}

const every = (stepMs: number, untilMs: number) => Array.from({ length: Math.floor(untilMs / stepMs) }, (_, i) => (i + 1) * stepMs);

describe('ProgressDeadline / withinProgress on the VirtualClock', () => {
  test('ProgressDeadline: idle counts from the start or the last touch, total from the start', () => {
    const clock = new VirtualClock(1000);
    const d = new ProgressDeadline(clock, 400, 1000);
    expect(d.deadline).toBe(1400);
    clock.advance(399);
    expect(d.expired()).toBeUndefined();
    d.touch();
    expect(d.deadline).toBe(1799);
    clock.advance(399);
    expect(d.expired()).toBeUndefined();
    clock.advance(1);
    expect(d.expired()).toBe('idle');
    d.touch();
    expect(d.deadline).toBe(2000); // the total cap is nearer than idle now
    clock.advance(202);
    expect(d.expired()).toBe('total');
    expect(finalizeTotalMs({ idleMs: 400, msPerAudioSecond: 1000 }, 2.5)).toBe(2900);
    expect(finalizeTotalMs({ idleMs: 400, msPerAudioSecond: 1000 }, -1)).toBe(400);
  });

  test('frames every 300 ms for 3 s (7.5 idle periods) and then the answer: no timeout', async () => {
    const clock = new ScheduledClock();
    const sim = simulate(clock, every(300, 3000), 3100);
    const onTimeout = jest.fn(() => new Error('timeout'));
    await expect(withinProgress(sim.done, { clock, idleMs: 400, totalMs: 10_000, activity: sim.activity, onTimeout })).resolves.toBe('done');
    expect(onTimeout).not.toHaveBeenCalled();
    expect(clock.now()).toBe(3100);
  });

  test('frames until 1.5 s, then silence: idle timeout exactly 400 ms after the last frame', async () => {
    const clock = new ScheduledClock();
    const sim = simulate(clock, every(300, 1500));
    const err = await withinProgress(sim.done, { clock, idleMs: 400, totalMs: 10_000, activity: sim.activity, onTimeout: (t) => Object.assign(new Error('t'), t) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'idle', idleMs: 400, elapsedMs: 1900 });
    expect(clock.now()).toBe(1900);
  });

  test('a provider that keeps talking without answering: the total cap', async () => {
    const clock = new ScheduledClock();
    const sim = simulate(clock, every(100, 60_000));
    const err = await withinProgress(sim.done, { clock, idleMs: 400, totalMs: 2500, activity: sim.activity, onTimeout: (t) => Object.assign(new Error('t'), t) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'total', totalMs: 2500, elapsedMs: 2500 });
  });

  test('progress re-arms the total cap from then (for what is still pending); touches without progress do not', () => {
    const clock = new VirtualClock(0);
    const d = new ProgressDeadline(clock, 400, 1000);
    clock.advance(900);
    d.progress(800); // cap now 900 + 800
    expect(d.totalMs).toBe(1700);
    clock.advance(300);
    d.progress(500); // cap from the last progress: 1200 + 500
    expect(d.totalMs).toBe(1700);
    clock.advance(300);
    d.touch();
    expect(d.progressAt).toBe(1200);
    clock.advance(199);
    expect(d.expired()).toBeUndefined();
    clock.advance(1);
    expect(d.expired()).toBe('total');
  });

  test('a frame that advances the work (progressed) extends the wait past the first total cap', async () => {
    const clock = new ScheduledClock();
    const sim = simulate(clock, every(300, 6000), 6100);
    let pending = 20; // "seconds pending", one less after each frame
    const onTimeout = jest.fn(() => new Error('timeout'));
    const wait = withinProgress(sim.done, {
      clock,
      idleMs: 400,
      totalMs: 1000,
      activity: sim.activity,
      progressed: () => (pending > 0 ? (pending--, 1000) : undefined),
      onTimeout,
    });
    await expect(wait).resolves.toBe('done');
    expect(onTimeout).not.toHaveBeenCalled();
    // Without progress, the same frames hit the first cap.
    const clock2 = new ScheduledClock();
    const sim2 = simulate(clock2, every(300, 6000), 6100);
    const err = await withinProgress(sim2.done, { clock: clock2, idleMs: 400, totalMs: 1000, activity: sim2.activity, progressed: () => undefined, onTimeout: (t) => Object.assign(new Error('t'), t) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'total', totalMs: 1000, elapsedMs: 1000 });
  });

  test('the signal aborts the wait with its reason', async () => {
    const clock = new ScheduledClock();
    const ac = new AbortController();
    const reason = new Error('session failed');
    clock.at(200, () => ac.abort(reason));
    const sim = simulate(clock, []);
    await expect(withinProgress(sim.done, { clock, idleMs: 400, totalMs: 1000, activity: sim.activity, onTimeout: () => new Error('timeout'), signal: ac.signal })).rejects.toBe(reason);
  });
});

// ---- fake providers on 127.0.0.1 -----------------------------------------------------------------

type Behaviour =
  /** One progress message every 200 ms, `count` times, then the finish. */
  | { kind: 'slow'; count: number }
  /** Nothing after the finalize request. */
  | { kind: 'silent' }
  /** A progress message every 100 ms until the client goes away (with `finals`, a final result per audio frame first). */
  | { kind: 'chatty'; finals?: boolean }
  /** Lagging behind the stream: a final result every 200 ms, each covering `stepSeconds` more audio, then the finish. */
  | { kind: 'lagging'; stepSeconds: number };

interface Protocol {
  name: string;
  /** Is this text frame the finalize request? */
  isFinalize(msg: Record<string, unknown>): boolean;
  onOpen?(ws: WebSocket): void;
  progress(ws: WebSocket, n: number, audioBytes: number): void;
  /** A final result covering the audio up to `seconds`. */
  final(ws: WebSocket, n: number, seconds: number): void;
  finish(ws: WebSocket, audioBytes: number): void;
  client(url: string, opts: { finalizeIdleMs: number; finalizeMsPerAudioSecond: number }): Provider;
}

const protocols: Protocol[] = [
  {
    name: 'assemblyai',
    isFinalize: (m) => m.type === 'Terminate',
    onOpen: (ws) => ws.send(JSON.stringify({ type: 'Begin', id: 'fake-session', expires_at: Math.floor(Date.now() / 1000) + 3600 })),
    // Partial turns: progress, but not final (they do not shrink the total cap).
    progress: (ws, n) => ws.send(JSON.stringify({ type: 'Turn', turn_order: 0, turn_is_formatted: false, end_of_turn: false, transcript: '', words: [{ text: `w${n}`, start: 0, end: 100, confidence: 0.5, word_is_final: false }] })),
    final: (ws, n, seconds) => ws.send(JSON.stringify({ type: 'Turn', turn_order: n, turn_is_formatted: true, end_of_turn: true, transcript: 'w', words: [{ text: 'w', start: 0, end: Math.round(seconds * 1000), confidence: 0.9, word_is_final: true }] })),
    finish: (ws) => {
      ws.send(JSON.stringify({ type: 'Termination', audio_duration_seconds: 0, session_duration_seconds: 1 }));
      ws.close(1000);
    },
    client: (url, opts) => new AssemblyAIProvider({ apiKey: 'aai-key', baseUrl: url, ...opts }),
  },
  {
    name: 'fireworks',
    isFinalize: (m) => m.checkpoint_id === 'final',
    progress: (ws, n) => ws.send(JSON.stringify({ task: 'transcribe', language: 'en', text: `w${n}`, words: [], segments: [{ id: 0, text: `w${n}`, words: [{ word: `w${n}`, is_final: false, start: 0, end: 0.1 }] }] })),
    final: (ws, n, seconds) => ws.send(JSON.stringify({ task: 'transcribe', language: 'en', text: 'w', words: [], segments: [{ id: n, text: 'w', words: [{ word: 'w', is_final: true, start: 0, end: seconds }] }] })),
    finish: (ws) => ws.send(JSON.stringify({ checkpoint_id: 'final' })),
    client: (url, opts) => new FireworksProvider({ apiKey: 'fw-key', baseUrl: url, ...opts }),
  },
  {
    name: 'deepgram',
    isFinalize: (m) => m.type === 'CloseStream',
    progress: (ws) => ws.send(JSON.stringify({ type: 'Results', start: 0, duration: 0.1, is_final: false, channel: { alternatives: [{ transcript: '', confidence: 0, words: [] }] } })),
    final: (ws, _n, seconds) => ws.send(JSON.stringify({ type: 'Results', start: 0, duration: seconds, is_final: true, channel: { alternatives: [{ transcript: '', confidence: 0, words: [] }] } })),
    finish: (ws, audioBytes) => {
      ws.send(JSON.stringify({ type: 'Metadata', request_id: 'fake-request', duration: audioBytes / 32_000, channels: 1 }));
      ws.close(1000);
    },
    client: (url, opts) => new DeepgramProvider({ apiKey: 'dg-key', baseUrl: url, ...opts }),
  },
];

interface FakeProvider {
  url: string;
  events: EventEmitter;
  /** performance.now() when the server got the finalize request, per session. */
  finalizeAt: number[];
  progressSent: number;
  close(): Promise<void>;
}

async function fakeProvider(protocol: Protocol, behaviour: Behaviour): Promise<FakeProvider> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const fake: FakeProvider = {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    events: new EventEmitter(),
    finalizeAt: [],
    progressSent: 0,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
  wss.on('connection', (ws) => {
    let audioBytes = 0;
    let finals = 0;
    let timer: NodeJS.Timeout | undefined;
    ws.on('close', () => clearInterval(timer));
    protocol.onOpen?.(ws);
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        audioBytes += (data as Buffer).length;
        if (behaviour.kind === 'chatty' && behaviour.finals) protocol.final(ws, finals++, audioBytes / 32_000);
        return;
      }
      const msg = JSON.parse(data.toString()) as Record<string, unknown>;
      if (!protocol.isFinalize(msg)) return;
      fake.finalizeAt.push(performance.now());
      fake.events.emit('finalize');
      if (behaviour.kind === 'silent') return;
      let n = 0;
      if (behaviour.kind === 'lagging') {
        let covered = 0;
        timer = setInterval(() => {
          if (ws.readyState !== ws.OPEN) return clearInterval(timer);
          covered = Math.min(audioBytes / 32_000, covered + behaviour.stepSeconds);
          protocol.final(ws, n++, covered);
          fake.progressSent += 1;
          if (covered >= audioBytes / 32_000) {
            clearInterval(timer);
            protocol.finish(ws, audioBytes);
          }
        }, 200);
        return;
      }
      timer = setInterval(
        () => {
          if (ws.readyState !== ws.OPEN) return clearInterval(timer);
          if (behaviour.kind === 'slow' && n >= behaviour.count) {
            clearInterval(timer);
            return protocol.finish(ws, audioBytes);
          }
          protocol.progress(ws, n++, audioBytes);
          fake.progressSent += 1;
        },
        behaviour.kind === 'slow' ? 200 : 100,
      );
    });
  });
  return fake;
}

async function run(client: Provider): Promise<{ result?: ProviderResult; error?: ScribeError; endedAt: number }> {
  try {
    const result = await client.transcribe({ mode: 'stream', model: 'm', options: {}, audio: toneInput(AUDIO_SECONDS) }, sessionContext());
    return { result, endedAt: performance.now() };
  } catch (e) {
    if (!(e instanceof ScribeError)) throw e;
    return { error: e, endedAt: performance.now() };
  }
}

describe.each(protocols)('$name: finalize bounded by progress (idle 600 ms)', (protocol) => {
  test('results keep coming every 200 ms for 2.4 s (4 idle periods): no timeout', async () => {
    const fake = await fakeProvider(protocol, { kind: 'slow', count: 12 });
    try {
      // Total cap 600 + 10 000 × 0.3 s = 3.6 s: not what ends this wait.
      const r = await run(protocol.client(fake.url, { finalizeIdleMs: IDLE_MS, finalizeMsPerAudioSecond: 10_000 }));
      expect(r.error).toBeUndefined();
      expect(r.result!.stats.bytesSent).toBe(AUDIO_SECONDS * 32_000);
      expect(fake.progressSent).toBe(12);
      // The wait lasted several idle periods: a fixed wait of the idle time would have failed.
      expect(r.endedAt - fake.finalizeAt[0]!).toBeGreaterThan(4 * IDLE_MS);
    } finally {
      await fake.close();
    }
  });

  test('a provider that goes silent: PROVIDER_TIMEOUT after about the idle time', async () => {
    const fake = await fakeProvider(protocol, { kind: 'silent' });
    try {
      const r = await run(protocol.client(fake.url, { finalizeIdleMs: IDLE_MS, finalizeMsPerAudioSecond: 10_000 }));
      expect(r.error).toBeInstanceOf(ProviderTimeoutError);
      expect(r.error!.code).toBe('PROVIDER_TIMEOUT');
      expect(r.error!.kind).toBe('retry');
      expect(r.error!.details).toMatchObject({ reason: 'idle', idleMs: IDLE_MS });
      expect(r.error!.message).toMatch(new RegExp(`${protocol.name}: no .* within ${IDLE_MS} ms of the server's last message`));
      const waited = r.endedAt - fake.finalizeAt[0]!;
      expect(waited).toBeGreaterThan(IDLE_MS - 100);
      expect(waited).toBeLessThan(IDLE_MS + 2500); // well below the 3.6 s total cap
    } finally {
      await fake.close();
    }
  });

  test('a provider that keeps talking but never finishes: PROVIDER_TIMEOUT at the total cap', async () => {
    const fake = await fakeProvider(protocol, { kind: 'chatty' });
    try {
      // 600 + 2000 × 0.3 s of audio not yet final = 1200 ms.
      const r = await run(protocol.client(fake.url, { finalizeIdleMs: IDLE_MS, finalizeMsPerAudioSecond: 2000 }));
      expect(r.error).toBeInstanceOf(ProviderTimeoutError);
      expect(r.error!.details).toMatchObject({ reason: 'total', totalMs: 1200, pendingAudioSeconds: AUDIO_SECONDS });
      expect(r.error!.message).toMatch(/within 1200 ms after .*although the server kept sending/);
      const waited = r.endedAt - fake.finalizeAt[0]!;
      expect(waited).toBeGreaterThan(1100);
      expect(waited).toBeLessThan(1200 + 2500);
      expect(fake.progressSent).toBeGreaterThan(6); // it was never idle for the idle time
    } finally {
      await fake.close();
    }
  });
  test('a provider finalising far behind the stream but still finalising: never cut off by the total cap', async () => {
    // 0.3 s pending at the finalize request: the first cap is 600 + 2000 × 0.3 = 1200 ms. The provider
    // needs 15 finals 200 ms apart (3 s); each re-arms the cap for the audio still pending.
    const fake = await fakeProvider(protocol, { kind: 'lagging', stepSeconds: 0.02 });
    try {
      const r = await run(protocol.client(fake.url, { finalizeIdleMs: IDLE_MS, finalizeMsPerAudioSecond: 2000 }));
      expect(r.error).toBeUndefined();
      expect(fake.progressSent).toBe(15);
      expect(r.endedAt - fake.finalizeAt[0]!).toBeGreaterThan(2 * 1200); // well past the first cap
    } finally {
      await fake.close();
    }
  });

  test('audio already covered by final results does not count toward the total cap', async () => {
    const fake = await fakeProvider(protocol, { kind: 'chatty', finals: true });
    try {
      const r = await run(protocol.client(fake.url, { finalizeIdleMs: IDLE_MS, finalizeMsPerAudioSecond: 2000 }));
      expect(r.error).toBeInstanceOf(ProviderTimeoutError);
      const d = r.error!.details as { reason: string; totalMs: number; progressAtMs: number; pendingAudioSeconds: number };
      expect(d.reason).toBe('total');
      // The finals for the first frames arrived before the finalize request: less than all 0.3 s is pending.
      expect(d.pendingAudioSeconds).toBeLessThan(0.25);
      // The cap counts from the last final result, for the audio still pending then.
      expect(d.totalMs).toBe(d.progressAtMs + Math.round(IDLE_MS + 2000 * d.pendingAudioSeconds));
      expect(r.endedAt - fake.finalizeAt[0]!).toBeLessThan(1200); // the uncovered bound (1200 ms) would be later
    } finally {
      await fake.close();
    }
  });
});

test('createProviders wires FINALIZE_IDLE_MS / FINALIZE_MS_PER_AUDIO_SECOND into the streaming clients', async () => {
  const fakes = await Promise.all(protocols.map((p) => fakeProvider(p, { kind: 'silent' })));
  try {
    const config = loadConfig({
      REDIS_URL: 'redis://127.0.0.1:1', // required by the schema; nothing connects to it here
      ASSEMBLYAI_API_KEY: 'aai-key',
      ASSEMBLYAI_STREAMING_URL: fakes[0]!.url,
      FIREWORKS_API_KEY: 'fw-key',
      FIREWORKS_STREAMING_URL: fakes[1]!.url,
      DEEPGRAM_API_KEY: 'dg-key',
      DEEPGRAM_URL: fakes[2]!.url.replace('ws:', 'http:'),
      FINALIZE_IDLE_MS: '1000',
      FINALIZE_MS_PER_AUDIO_SECOND: '7000',
    });
    const providers = createProviders(config);
    const runs = await Promise.all(protocols.map((p) => run(providers[p.name]!)));
    for (const r of runs) {
      expect(r.error).toBeInstanceOf(ProviderTimeoutError);
      // idle 1000 ms; total 1000 + 7000 × 0.3 s of audio.
      expect(r.error!.details).toMatchObject({ reason: 'idle', idleMs: 1000, totalMs: 3100 });
    }
  } finally {
    await Promise.all(fakes.map((f) => f.close()));
  }
});
