import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { RecogniserError } from '../domain/errors';
import type { Word } from '../domain/transcript';

/** Debian's interpreter: python3-pocketsphinx is installed for it, not for other Pythons on PATH. */
export const SPHINX_PYTHON = '/usr/bin/python3';
export const SPHINX_MODEL_DIR = '/usr/share/pocketsphinx/model/en-us';
/** packages/core/native/sphinx_stream.py; the same relative place from src/ and dist/. */
export const SPHINX_SCRIPT = join(__dirname, '..', '..', 'native', 'sphinx_stream.py');

export type SphinxMessage =
  | { type: 'ready'; pid?: number }
  | { type: 'partial'; text: string; audio_end: number }
  | { type: 'final'; start: number; end: number; words: Word[] }
  | { type: 'end'; duration: number }
  | { type: 'error'; message: string };

export interface SphinxOptions {
  /** Emit a partial hypothesis every this many ms of audio (0 = none). */
  partialMs?: number;
  maxUtteranceSeconds?: number;
  /**
   * Feed the decoder blocks of exactly 100 ms whenever the PCM arrives (batch): its results depend on
   * the blocks, so this gives the same transcript for the same audio however loaded the machine is.
   * Default false: a block is what has arrived, up to 100 ms (stream; no waiting for a full block).
   */
  exactBlocks?: boolean;
  onMessage?: (m: SphinxMessage) => void;
}

export interface SphinxResult {
  finals: Array<Extract<SphinxMessage, { type: 'final' }>>;
  duration: number;
}

/**
 * The recogniser server of this process: sphinx_stream.py --serve, which loads the model once and
 * forks a child per session (connection on its Unix socket), so a session pays a fork instead of an
 * interpreter start and a model load (~0.4 s of CPU), and every session starts from the same freshly
 * loaded decoder state (identical results to a process of its own). Started on first use, restarted
 * after it dies, not keeping the event loop alive; it exits when this process closes its stdin
 * (shutdownRecogniser, or this process ending).
 */
interface Zygote {
  child: ChildProcessWithoutNullStreams;
  dir: string;
  socket: Promise<string>;
  stderr: string;
  closed: Promise<void>;
}

let zygote: Zygote | undefined;
let zygoteStarts = 0;

/** How many recogniser servers (model loads) this process has started: one while it stays up. */
export function recogniserStarts(): number {
  return zygoteStarts;
}

function startZygote(): Zygote {
  const dir = mkdtempSync(join(tmpdir(), 'scribe-sphinx-'));
  const path = join(dir, 'sock');
  const child = spawn(SPHINX_PYTHON, [SPHINX_SCRIPT, '--model-dir', SPHINX_MODEL_DIR, '--serve', path], { stdio: ['pipe', 'pipe', 'pipe'] });
  zygoteStarts += 1;
  const z: Zygote = { child, dir, stderr: '', socket: Promise.resolve(path), closed: Promise.resolve() };
  child.stdin.on('error', () => {});
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    z.stderr = (z.stderr + d).slice(-4000);
  });
  z.closed = new Promise((resolve) => {
    child.once('close', () => {
      if (zygote === z) zygote = undefined;
      rmSync(dir, { recursive: true, force: true });
      resolve();
    });
  });
  z.socket = new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      if (/"listening"/.test(line)) {
        // Up: let this process exit without waiting for it (it follows when its stdin closes).
        for (const h of [child, child.stdin, child.stdout, child.stderr] as Array<{ unref?: () => void }>) h.unref?.();
        resolve(path);
      }
    });
    child.once('error', (e) => reject(new RecogniserError(`cannot start recogniser (${SPHINX_PYTHON}): ${e.message}`, { cause: e })));
    child.once('close', (code, signal) => reject(new RecogniserError(`recogniser server exited with ${signal ?? code}: ${lastLines(z.stderr)}`)));
  });
  z.socket.catch(() => {});
  return z;
}

/** Stop this process's recogniser server (sessions under way finish in their own processes). */
export async function shutdownRecogniser(): Promise<void> {
  const z = zygote;
  if (!z) return;
  zygote = undefined;
  z.child.stdin.end();
  const timer = setTimeout(() => z.child.kill('SIGKILL'), 5000);
  await z.closed;
  clearTimeout(timer);
}

process.once('exit', () => {
  if (zygote) rmSync(zygote.dir, { recursive: true, force: true });
});

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ');
}

async function openSession(header: object): Promise<Socket> {
  for (let attempt = 0; ; attempt++) {
    if (!zygote) zygote = startZygote();
    const z = zygote;
    const path = await z.socket;
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const sock = connect(path);
        sock.once('error', reject);
        sock.once('connect', () => {
          sock.off('error', reject);
          sock.write(`${JSON.stringify(header)}\n`);
          resolve(sock);
        });
      });
    } catch (e) {
      // The server died since it answered: start another once.
      if (zygote === z) zygote = undefined;
      z.child.kill('SIGKILL');
      if (attempt >= 1) throw new RecogniserError(`cannot reach the recogniser: ${(e as Error).message}`, { cause: e });
    }
  }
}

/**
 * One recogniser session: a process forked by the recogniser server, fed 16 kHz mono s16le PCM over a
 * Unix socket. `write` honours back-pressure; `end` closes the input; `result` resolves after the
 * recogniser flushed everything.
 */
export class SphinxSession {
  private readonly socket: Promise<Socket>;
  private readonly finals: SphinxResult['finals'] = [];
  private pid: number | undefined;
  private closed = false;
  private killed = false;
  readonly result: Promise<SphinxResult>;

  constructor(opts: SphinxOptions = {}) {
    if (!existsSync(SPHINX_SCRIPT)) throw new RecogniserError(`recogniser script missing at ${SPHINX_SCRIPT}`);
    const header: Record<string, number | boolean> = { partial_ms: opts.partialMs ?? 0, exact: opts.exactBlocks ?? false };
    if (opts.maxUtteranceSeconds) header.max_utterance = opts.maxUtteranceSeconds;
    this.socket = openSession(header);
    this.socket.catch(() => {});
    this.result = this.socket.then(
      (sock) =>
        new Promise<SphinxResult>((resolve, reject) => {
          if (this.killed) sock.destroy();
          sock.on('error', () => {}); // surfaced as a session without an end
          let end: number | undefined;
          let error: string | undefined;
          const lines = createInterface({ input: sock });
          lines.on('line', (line) => {
            let msg: SphinxMessage;
            try {
              msg = JSON.parse(line) as SphinxMessage;
            } catch {
              return;
            }
            if (msg.type === 'ready') this.pid = msg.pid;
            if (msg.type === 'final') this.finals.push(msg);
            if (msg.type === 'end') end = msg.duration;
            if (msg.type === 'error') error = msg.message;
            opts.onMessage?.(msg);
          });
          sock.once('close', () => {
            this.closed = true;
            lines.close();
            if (end !== undefined && !this.killed) resolve({ finals: this.finals, duration: end });
            else reject(new RecogniserError(this.killed ? 'recogniser session killed' : `recogniser session ended without a result: ${error ?? (lastLines(zygote?.stderr ?? '') || 'no message')}`));
          });
        }),
    );
    this.result.catch(() => {});
  }

  /** Write PCM; resolves when the socket can take more (back-pressure). */
  async write(pcm: Buffer): Promise<void> {
    const sock = await this.socket;
    if (sock.destroyed || !sock.writable) return;
    if (sock.write(pcm)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        sock.off('drain', done);
        sock.off('close', done);
        resolve();
      };
      sock.once('drain', done);
      sock.once('close', done);
    });
  }

  async end(): Promise<SphinxResult> {
    const sock = await this.socket;
    if (!sock.destroyed) sock.end();
    return this.result;
  }

  kill(): void {
    if (this.killed || this.closed) return;
    this.killed = true;
    if (this.pid !== undefined) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    this.socket.then((sock) => sock.destroy(), () => undefined);
  }
}
