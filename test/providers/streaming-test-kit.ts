/**
 * Test kit shared by the streaming provider tests (AssemblyAI, Fireworks, the AssemblyAI SDK check):
 * synthesised speech fixtures, a file-backed AudioInput, a raw WebSocket client for misbehaving on
 * purpose, and the frame-log pacing analysis.
 */
import { execFile } from 'node:child_process';
import { createReadStream, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import type { AudioInput, SessionContext, SessionEvent } from '@scribe-fleet/core';
import { decodeToPcm } from '@scribe-fleet/core/adapters/s3/ffmpeg-decoder';
import { systemClock } from '@scribe-fleet/core/adapters/system-clock';
import { synthesise, type SampleSpec } from '../../infra/local/src/samples';
import type { FrameRecord } from '@scribe-fleet/emulators';

export interface Fixture {
  spec: SampleSpec;
  path: string;
}

export interface FixtureSet {
  dir: string;
  get(name: string): Fixture;
  cleanup(): Promise<void>;
}

/** Synthesise each sample into a fresh temp dir (in parallel). */
export async function makeFixtures(specs: SampleSpec[]): Promise<FixtureSet> {
  const dir = await mkdtemp(join(tmpdir(), 'scribe-stream-'));
  const fixtures = new Map<string, Fixture>();
  await Promise.all(
    specs.map(async (spec) => {
      const path = join(dir, spec.name);
      await synthesise(spec, path);
      fixtures.set(spec.name, { spec, path });
    }),
  );
  return {
    dir,
    get(name) {
      const f = fixtures.get(name);
      if (!f) throw new Error(`no fixture ${name}`);
      return f;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** An AudioInput over a local file: pcm() decodes it with ffmpeg, original() streams it. */
export function fileAudioInput(path: string): AudioInput {
  const size = statSync(path).size;
  return {
    size,
    pcm: (signal?: AbortSignal) => decodeToPcm(createReadStream(path), signal ? { signal } : {}),
    original: async () => ({ stream: createReadStream(path), size, filename: basename(path) }),
  };
}

/** A SessionContext on the real clock that records events. */
export function sessionContext(signal: AbortSignal = new AbortController().signal): SessionContext & { events: SessionEvent[] } {
  const events: SessionEvent[] = [];
  return { signal, clock: systemClock, onEvent: (e) => events.push(e), events };
}

/** Raw 16 kHz s16le PCM of a file, decoded fully (for raw misbehaving clients only). */
export async function decodeFile(path: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of decodeToPcm(createReadStream(path))) parts.push(b);
  return Buffer.concat(parts);
}

// ---- a raw WebSocket client ----------------------------------------------------------------------

export interface RawClient {
  ws: WebSocket;
  messages: Array<Record<string, unknown>>;
  /** Resolves with the close code/reason (1006 for a drop). */
  closed: Promise<{ code: number; reason: string }>;
  /** Wait for the first message matching `pred` (rejects if the socket closes first). */
  next(pred: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
}

export function rawClient(url: string, headers: Record<string, string> = {}): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    const messages: Array<Record<string, unknown>> = [];
    const waiters: Array<{ pred: (m: Record<string, unknown>) => boolean; resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void }> = [];
    const closed = new Promise<{ code: number; reason: string }>((res) => {
      ws.on('close', (code, reason) => {
        for (const w of waiters.splice(0)) w.reject(new Error(`closed ${code} ${reason.toString()}`));
        res({ code, reason: reason.toString() });
      });
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const m = JSON.parse(data.toString()) as Record<string, unknown>;
      messages.push(m);
      for (const w of [...waiters]) {
        if (w.pred(m)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    });
    ws.on('error', () => {});
    const next = (pred: (m: Record<string, unknown>) => boolean) => {
      const seen = messages.find(pred);
      if (seen) return Promise.resolve(seen);
      if (ws.readyState === WebSocket.CLOSED) return Promise.reject(new Error('closed'));
      return new Promise<Record<string, unknown>>((res, rej) => waiters.push({ pred, resolve: res, reject: rej }));
    };
    ws.once('open', () => resolve({ ws, messages, closed, next }));
    ws.once('unexpected-response', (_req, res) => {
      reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, headers: res.headers }));
      ws.terminate();
    });
    ws.once('error', (e) => reject(e));
  });
}

// ---- pacing analysis of a frame log --------------------------------------------------------------

export interface PacingAnalysis {
  frames: number;
  /** Audio duration of each binary frame, ms. */
  minFrameMs: number;
  maxFrameMs: number;
  /** Median gap between consecutive frames, ms. */
  medianGapMs: number;
  /** The most audio was ahead of wall time (since the first frame), ms: ≤ one chunk when paced. */
  maxAheadMs: number;
}

/** Analyse the binary frames a session received (16 kHz s16le: 32 bytes per ms). */
export function analysePacing(frames: FrameRecord[], bytesPerMs = 32): PacingAnalysis {
  const bin = frames.filter((f) => f.direction === 'in' && f.kind === 'binary');
  const durations = bin.map((f) => f.size / bytesPerMs);
  const gaps = bin.slice(1).map((f, i) => f.at - bin[i]!.at).sort((a, b) => a - b);
  let audio = 0;
  let maxAhead = 0;
  const t0 = bin[0]?.at ?? 0;
  for (const f of bin) {
    audio += f.size / bytesPerMs; // audio received including this frame
    maxAhead = Math.max(maxAhead, audio - (f.at - t0));
  }
  return {
    frames: bin.length,
    minFrameMs: Math.min(...durations),
    maxFrameMs: Math.max(...durations),
    medianGapMs: gaps[Math.floor(gaps.length / 2)] ?? 0,
    maxAheadMs: maxAhead,
  };
}

/** An AudioInput of generated PCM (no decoder): `seconds` of a quiet 440 Hz tone, in 100 ms pieces. */
export function toneInput(seconds: number): AudioInput {
  const samples = Math.round(seconds * 16_000);
  const pcm = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) pcm.writeInt16LE(Math.round(500 * Math.sin((2 * Math.PI * 440 * i) / 16_000)), i * 2);
  return {
    size: pcm.length,
    async *pcm() {
      for (let i = 0; i < pcm.length; i += 3200) yield pcm.subarray(i, i + 3200);
    },
    original: async () => {
      throw new Error('toneInput has no original');
    },
  };
}

/**
 * Synthesise each spec and join them into one 16 kHz mono wav. Every sample carries 0.6 s of
 * silence at both ends, so the joins are 1.2 s pauses: separate utterances / turns / segments.
 */
export async function makeJoinedFixture(specs: SampleSpec[], outPath: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'scribe-join-'));
  try {
    const parts = await Promise.all(
      specs.map(async (spec, i) => {
        const p = join(dir, `part-${i}.wav`);
        await synthesise({ ...spec, format: 'wav', sampleRate: 16000, channels: 1 }, p);
        return p;
      }),
    );
    await promisify(execFile)('ffmpeg', [
      '-nostdin', '-loglevel', 'error', '-y',
      ...parts.flatMap((p) => ['-i', p]),
      '-filter_complex', `${parts.map((_, i) => `[${i}:a]`).join('')}concat=n=${parts.length}:v=0:a=1`,
      '-ar', '16000', '-ac', '1', '-c:a', 'pcm_s16le', outPath,
    ]);
    return outPath;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
