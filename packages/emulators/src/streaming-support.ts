/**
 * Machinery shared by the WebSocket streaming emulators (AssemblyAI v3, Fireworks): the HTTP(S) server
 * with upgrade routing and handshake fault hooks, raw HTTP refusals at the upgrade, the real-time rate
 * check, close-reason truncation, and a recogniser that can be flushed mid-stream (so a control message
 * like ForceEndpoint or a checkpoint can turn everything heard so far into final words).
 */
import { createServer as createHttpServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocketServer, type WebSocket } from 'ws';
import type { SphinxMessage, SphinxSession } from '@scribe-fleet/core/adapters/sphinx-recogniser';
import type { Word } from '@scribe-fleet/core';
import { openRecogniser, type FaultHooks } from './common';

// ---- HTTP(S) + WebSocket server ------------------------------------------------------------------

export interface TlsOptions {
  key: string | Buffer;
  cert: string | Buffer;
}

export interface WsEmulatorServer {
  server: Server;
  wss: WebSocketServer;
  port: number;
  /** http(s)://127.0.0.1:port */
  url: string;
  close(): Promise<void>;
}

export interface WsServerOptions {
  port?: number;
  host?: string;
  tls?: TlsOptions;
  /** Plain HTTP requests (non-upgrade), e.g. AssemblyAI's `GET /v3/token`. Default: 404. */
  onRequest?: (req: IncomingMessage, res: ServerResponse) => void;
  /** Upgrade requests; the handler refuses (writing a raw HTTP response) or calls `accept`. */
  onUpgrade: (req: IncomingMessage, socket: Duplex, accept: () => Promise<WebSocket>) => void | Promise<void>;
}

export async function startWsServer(opts: WsServerOptions): Promise<WsEmulatorServer> {
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (opts.onRequest) return opts.onRequest(req, res);
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'Not Found' }));
  };
  const server = opts.tls ? createHttpsServer({ key: opts.tls.key, cert: opts.tls.cert }, handler) : createHttpServer(handler);
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });
  const sockets = new Set<Duplex>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    // Rejects when the client went away first (e.g. it timed out during a slow-handshake fault).
    const accept = () =>
      new Promise<WebSocket>((resolve, reject) => {
        if (socket.destroyed || !socket.writable) return reject(new Error('client went away before the upgrade'));
        socket.once('close', () => reject(new Error('client went away before the upgrade')));
        wss.handleUpgrade(req, socket, head, (ws) => resolve(ws));
      });
    Promise.resolve(opts.onUpgrade(req, socket, accept)).catch(() => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    wss,
    port,
    url: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      for (const s of sockets) s.destroy();
      wss.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Answer an upgrade request with a plain HTTP response (the handshake fails, no WebSocket). */
export function refuseUpgrade(socket: Duplex, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? STATUS_CODES[status] ?? 'Error'}`,
    `Content-Type: ${typeof body === 'string' ? 'text/plain' : 'application/json'}`,
    `Content-Length: ${Buffer.byteLength(text)}`,
    'Connection: close',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${text}`);
}

/**
 * The handshake-level fault hooks of common.ts, applied to one upgrade request: 5xx (consumed one at
 * a time), never answer (socket held open until the emulator closes), slow first byte. Returns true
 * when the request was consumed by a fault.
 */
export async function applyHandshakeFaults(faults: FaultHooks, socket: Duplex): Promise<boolean> {
  if (faults.fail5xxTimes && faults.fail5xxTimes > 0) {
    faults.fail5xxTimes -= 1;
    refuseUpgrade(socket, 503, { error: 'Service Unavailable' });
    return true;
  }
  if (faults.neverAnswer) return true;
  if (faults.slowFirstByteMs && faults.slowFirstByteMs > 0) await sleep(faults.slowFirstByteMs);
  return false;
}

/** A WebSocket close reason may hold at most 123 bytes (RFC 6455 §5.5: 125-byte control payload). */
export function closeReason(text: string): string {
  let out = text;
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1);
  return out;
}

/** The query parameter values of a request URL (repeated keys and comma lists both count). */
export function queryList(params: URLSearchParams, key: string): string[] {
  return params
    .getAll(key)
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
}

/** Keep a session record for `sessions()`, dropping the oldest beyond `limit` (long-running CLI use). */
export function remember<T extends { id: string }>(map: Map<string, T>, info: T, limit = 10_000): void {
  map.set(info.id, info);
  while (map.size > limit) map.delete(map.keys().next().value!);
}

// ---- real-time rate check ------------------------------------------------------------------------

/**
 * Audio received vs. wall time since the first audio frame. A client pacing at real time is never
 * ahead by more than about one chunk; `aheadSeconds` above an allowance means it sends too fast.
 */
export class RateMonitor {
  private firstAt: number | undefined;
  audioSeconds = 0;
  constructor(private readonly now: () => number = () => performance.now()) {}

  add(seconds: number): { audioSeconds: number; elapsedSeconds: number; aheadSeconds: number } {
    const t = this.now();
    if (this.firstAt === undefined) this.firstAt = t;
    this.audioSeconds += seconds;
    const elapsedSeconds = (t - this.firstAt) / 1000;
    return { audioSeconds: this.audioSeconds, elapsedSeconds, aheadSeconds: this.audioSeconds - elapsedSeconds };
  }
}

// ---- a recogniser that can be flushed mid-stream -------------------------------------------------

const BYTES_PER_SECOND = 32_000;

export interface RecognisedUtterance {
  start: number;
  end: number;
  words: Word[];
}

export interface FlushableRecogniserOptions {
  /** Partial hypothesis period in ms of audio. */
  partialMs: number;
  /** Partial hypothesis of the utterance in progress; `audioEnd` in stream seconds. */
  onPartial?: (text: string, audioEnd: number) => void;
  /** A finished utterance with word times in stream seconds. */
  onFinal?: (u: RecognisedUtterance) => void;
  /** The recogniser process failed. */
  onError?: (err: Error) => void;
}

/**
 * The local recogniser fed 16 kHz s16le PCM as it arrives. `flush()` ends the current recogniser
 * process (so every word heard so far becomes final) and continues in a fresh one whose word times
 * are offset to stream time; messages of the new process are held back until the old one has
 * delivered everything, so callbacks always arrive in stream order.
 */
export class FlushableRecogniser {
  private current: RecogniserProcess;
  private bytes = 0;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: FlushableRecogniserOptions) {
    this.current = this.open(0, false);
  }

  /** Seconds of audio written so far. */
  get audioSeconds(): number {
    return this.bytes / BYTES_PER_SECOND;
  }

  private open(offsetBytes: number, gated: boolean): RecogniserProcess {
    const offset = offsetBytes / BYTES_PER_SECOND;
    const gate = { open: !gated, held: [] as SphinxMessage[] };
    const deliver = (m: SphinxMessage) => {
      if (this.closed) return;
      if (m.type === 'partial') this.opts.onPartial?.(m.text, round3(m.audio_end + offset));
      else if (m.type === 'final') {
        const words = m.words.map((w) => ({ ...w, start: round3(w.start + offset), end: round3(w.end + offset) }));
        this.opts.onFinal?.({ start: round3(m.start + offset), end: round3(m.end + offset), words });
      }
    };
    const session = openRecogniser({
      partialMs: this.opts.partialMs,
      onMessage: (m) => (gate.open ? deliver(m) : gate.held.push(m)),
    });
    session.result.catch((err: Error) => {
      if (!this.closed && !killed.has(session)) this.opts.onError?.(err);
    });
    return {
      session,
      stdin: Promise.resolve(),
      release: () => {
        gate.open = true;
        for (const m of gate.held.splice(0)) deliver(m);
      },
    };
  }

  write(pcm: Buffer): void {
    if (this.closed || pcm.length === 0) return;
    this.bytes += pcm.length;
    // One write in flight per process (back-pressure), in order; end() queues behind them.
    const p = this.current;
    p.stdin = p.stdin.then(() => p.session.write(pcm));
  }

  /** Make everything written so far final; resolves after its finals were delivered. */
  flush(): Promise<void> {
    const old = this.current;
    const next = this.open(this.bytes, true);
    this.current = next;
    const ended = endProcess(old);
    this.chain = this.chain.then(() => ended).then(() => next.release());
    return this.chain;
  }

  /** End the stream: resolves after the last finals were delivered. */
  end(): Promise<void> {
    const ended = endProcess(this.current);
    this.chain = this.chain.then(() => ended);
    return this.chain;
  }

  /** Drop the audio context in progress (nothing pending becomes final) and continue afresh. */
  reset(): void {
    const old = this.current;
    const next = this.open(this.bytes, true);
    this.current = next;
    killed.add(old.session);
    old.session.kill();
    this.chain = this.chain.then(() => next.release());
  }

  kill(): void {
    this.closed = true;
    killed.add(this.current.session);
    this.current.session.kill();
  }
}

interface RecogniserProcess {
  session: SphinxSession;
  /** The queue of stdin operations (writes, then the end). */
  stdin: Promise<void>;
  release: () => void;
}

const killed = new WeakSet<SphinxSession>();
const noop = () => undefined;

function endProcess(p: RecogniserProcess): Promise<void> {
  p.stdin = p.stdin.then(() => p.session.end().then(noop, noop));
  return p.stdin;
}

/** Round to milliseconds (times in seconds). */
export function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

// ---- audio conversion ----------------------------------------------------------------------------

/** G.711 µ-law byte → 16-bit linear sample. */
function mulawToLinear(u: number): number {
  const v = ~u & 0xff;
  const sign = v & 0x80;
  const exponent = (v >> 4) & 0x07;
  const mantissa = v & 0x0f;
  const sample = (((mantissa << 3) + 0x84) << exponent) - 0x84;
  return sign ? -sample : sample;
}

/**
 * Converts a client's raw audio (s16le or µ-law at any rate, mono) to the recogniser's 16 kHz s16le,
 * streaming (linear interpolation; state carried across frames).
 */
export class PcmConverter {
  private pos = 0;
  private prev = 0;
  private odd: Buffer | null = null;
  constructor(
    private readonly sampleRate: number,
    private readonly encoding: 'pcm_s16le' | 'pcm_mulaw',
  ) {}

  convert(frame: Buffer): Buffer {
    let samples: Int16Array;
    if (this.encoding === 'pcm_mulaw') {
      samples = Int16Array.from(frame, mulawToLinear);
    } else {
      let buf = this.odd ? Buffer.concat([this.odd, frame]) : frame;
      this.odd = null;
      if (buf.length % 2) {
        this.odd = buf.subarray(buf.length - 1);
        buf = buf.subarray(0, buf.length - 1);
      }
      if (this.sampleRate === 16_000) return buf;
      samples = new Int16Array(buf.length / 2);
      for (let i = 0; i < samples.length; i++) samples[i] = buf.readInt16LE(i * 2);
    }
    if (this.sampleRate === 16_000) return Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
    const step = this.sampleRate / 16_000;
    const out: number[] = [];
    const n = samples.length;
    // Index -1 is the previous frame's last sample; `pos` is the next output's input position.
    const at = (i: number) => (i < 0 ? this.prev : (samples[Math.min(i, n - 1)] ?? 0));
    while (this.pos <= n - 1) {
      const i = Math.floor(this.pos);
      const frac = this.pos - i;
      out.push(Math.round(at(i) * (1 - frac) + at(i + 1) * frac));
      this.pos += step;
    }
    this.pos -= n;
    if (n) this.prev = samples[n - 1]!;
    const buf = Buffer.alloc(out.length * 2);
    out.forEach((s, i) => buf.writeInt16LE(Math.max(-32768, Math.min(32767, s)), i * 2));
    return buf;
  }
}
