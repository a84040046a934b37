/**
 * The OFFICIAL AssemblyAI Node SDK (`assemblyai`, root devDependency) against our v3 emulator: proof that
 * the emulator speaks the protocol real clients expect, not just the one our own client speaks.
 *
 * The SDK's StreamingTranscriber takes `websocketBaseUrl` (types/streaming: StreamingTranscriberParams)
 * but refuses anything but `wss:` (connectionUrl: "Invalid protocol, must be wss"), so the emulator runs
 * with TLS on a throw-away self-signed certificate. The SDK gives no way to pass a CA to its `ws`
 * client, so `ws` is wrapped for this file only: client sockets to wss:// get our CA (the server
 * side of `ws` is untouched).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AssemblyAI, type BeginEvent, type TurnEvent } from 'assemblyai';
import { chunkBytesFor, pacedSend, rechunk, wordErrorRate } from '@scribe-fleet/core';
import { systemClock } from '@scribe-fleet/core/adapters/system-clock';
import { DEFAULT_SAMPLES } from '../../infra/local/src/samples';
import { startAssemblyAIEmulator, type AssemblyAIEmulatorHandle, type AssemblyAISessionInfo } from '@scribe-fleet/emulators';
import { analysePacing, fileAudioInput, makeFixtures, type FixtureSet } from './streaming-test-kit';

jest.setTimeout(60_000);

// Set in beforeAll, read when the SDK opens a socket ("mock" prefix: allowed inside jest.mock).
let mockCa: Buffer | undefined;
jest.mock('ws', () => {
  const Actual = jest.requireActual<typeof import('ws')>('ws');
  class TrustingWebSocket extends Actual {
    constructor(address: string | URL, protocols?: unknown, options?: Record<string, unknown>) {
      // ws accepts (address, options) as well as (address, protocols, options).
      const isOptions = protocols !== null && typeof protocols === 'object' && !Array.isArray(protocols);
      const opts = { ...((isOptions ? protocols : options) as Record<string, unknown> | undefined) };
      if (String(address).startsWith('wss:') && mockCa && opts.ca === undefined) opts.ca = mockCa;
      super(address, (isOptions ? [] : protocols) as string[], opts);
    }
  }
  return TrustingWebSocket;
});

const KEY = 'aai-sdk-key-51d0';
const SAMPLE = DEFAULT_SAMPLES[0]!;
let fx: FixtureSet;
let emu: AssemblyAIEmulatorHandle;
let websocketBaseUrl: string;

/** A self-signed certificate for 127.0.0.1 (openssl; RSA 2048, valid one day). */
async function selfSigned(dir: string): Promise<{ key: Buffer; cert: Buffer }> {
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert,
  ]);
  return { key: await readFile(key), cert: await readFile(cert) };
}

function sessionClosed(id: string): Promise<AssemblyAISessionInfo> {
  const done = emu.sessions().find((x) => x.id === id && x.closeCode !== undefined);
  if (done) return Promise.resolve(done);
  return new Promise((resolve) => {
    const on = (info: AssemblyAISessionInfo) => {
      if (info.id !== id) return;
      emu.events.off('session-closed', on);
      resolve(info);
    };
    emu.events.on('session-closed', on);
  });
}

/** GET /v3/token over https with our CA (the SDK's own createTemporaryToken uses fetch, which cannot take one). */
function temporaryToken(): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(`${emu.url}/v3/token?expires_in_seconds=60`, { headers: { Authorization: KEY }, ca: mockCa }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve((JSON.parse(body) as { token: string }).token) : reject(new Error(body))));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  fx = await makeFixtures([SAMPLE]);
  const tls = await selfSigned(fx.dir);
  mockCa = tls.cert;
  emu = await startAssemblyAIEmulator({ apiKeys: [KEY], tls });
  websocketBaseUrl = `${emu.wsUrl}/v3/ws`;
  expect(websocketBaseUrl).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/v3\/ws$/);
});

afterAll(async () => {
  await emu?.close();
  await fx?.cleanup();
});

test('the SDK streams a file (paced, 100 ms chunks), gets Begin, Turns and a clean Terminate → Termination', async () => {
  const client = new AssemblyAI({ apiKey: KEY });
  // connectTimeout: the SDK's 1 s default is for a warm production service; CI machines are slower.
  const transcriber = client.streaming.transcriber({
    websocketBaseUrl,
    sampleRate: 16_000,
    speechModel: 'universal-streaming-english',
    formatTurns: true,
    connectTimeout: 5000,
  });
  const turns: TurnEvent[] = [];
  const errors: Error[] = [];
  const closes: Array<[number, string]> = [];
  transcriber.on('turn', (t) => turns.push(t));
  transcriber.on('error', (e) => errors.push(e));
  transcriber.on('close', (code, reason) => closes.push([code, reason]));

  const begin: BeginEvent = await transcriber.connect();
  expect(begin).toMatchObject({ type: 'Begin', id: expect.any(String), expires_at: expect.any(Number) });
  const session = emu.sessions().find((s) => s.id === begin.id)!;
  expect(session.query).toMatchObject({ sample_rate: '16000', speech_model: 'universal-streaming-english', format_turns: 'true' });

  await pacedSend({
    chunks: rechunk(fileAudioInput(fx.get(SAMPLE.name).path).pcm(), chunkBytesFor(100)),
    clock: systemClock,
    send: (chunk) => {
      // The file's tail is shorter than 100 ms; keep it ≥ 50 ms as the service demands.
      const frame = chunk.length >= 1600 ? chunk : Buffer.concat([chunk, Buffer.alloc(1600 - chunk.length)]);
      transcriber.sendAudio(frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.length));
    },
  });
  await transcriber.close(); // sends Terminate and waits for Termination (bounded at 5 s)

  expect(errors).toEqual([]);
  const closed = await sessionClosed(begin.id);
  expect(closed).toMatchObject({ terminateReceived: true, terminationSent: true });
  // End-of-turn messages, keyed by turn_order (formatted ones win), make the transcript.
  const finals = new Map<number, TurnEvent>();
  for (const t of turns) if (t.end_of_turn) finals.set(t.turn_order, t);
  expect(finals.size).toBeGreaterThan(0);
  const text = [...finals.entries()].sort((a, b) => a[0] - b[0]).map(([, t]) => t.transcript).join(' ');
  expect(wordErrorRate(SAMPLE.text, text)).toBeLessThanOrEqual(0.15);
  for (const t of finals.values()) {
    expect(t.turn_is_formatted).toBe(true);
    for (const w of t.words) {
      expect(Number.isInteger(w.start) && Number.isInteger(w.end)).toBe(true);
      expect(w.word_is_final).toBe(true);
    }
  }
  // Partials came first (end_of_turn false) and turn_order started at 0.
  expect(turns[0]).toMatchObject({ end_of_turn: false, turn_order: 0 });
  const pacing = analysePacing(emu.frames.frames(begin.id));
  expect(pacing.minFrameMs).toBeGreaterThanOrEqual(50);
  expect(pacing.maxFrameMs).toBe(100);
});

test('temporary token auth (?token=) and the SDK sees the strict rules as the service reports them', async () => {
  const token = await temporaryToken();
  const transcriber = new AssemblyAI({ apiKey: 'unused' }).streaming.transcriber({
    websocketBaseUrl,
    token,
    sampleRate: 16_000,
    speechModel: 'universal-streaming-english',
    connectTimeout: 5000,
  });
  const errors: Array<Error & { code?: number }> = [];
  const closed = new Promise<[number, string]>((resolve) => transcriber.on('close', (code, reason) => resolve([code, reason])));
  transcriber.on('error', (e) => errors.push(e));
  const begin = await transcriber.connect();
  expect(emu.sessions().find((s) => s.id === begin.id)!.key).toBe(KEY);
  // A 20 ms frame: the Error frame reaches the SDK's error listener with its code, then close 3007.
  transcriber.sendAudio(new ArrayBuffer(640));
  const [code, reason] = await closed;
  expect(code).toBe(3007);
  expect(reason).toBe('Input duration violation: 20 ms. Expected between 50 and 1000 ms');
  expect(errors).toHaveLength(1);
  expect(errors[0]!.message).toBe(reason);
  expect(errors[0]!.code).toBe(3007);
});

test('a bad key: connect() rejects with the 1008 close reason', async () => {
  const transcriber = new AssemblyAI({ apiKey: 'wrong-key' }).streaming.transcriber({
    websocketBaseUrl,
    sampleRate: 16_000,
    speechModel: 'universal-streaming-english',
    connectTimeout: 5000,
    maxConnectionRetries: 0,
  });
  await expect(transcriber.connect()).rejects.toMatchObject({ code: 1008, message: 'Unauthorized Connection: Invalid API key or token' });
});
