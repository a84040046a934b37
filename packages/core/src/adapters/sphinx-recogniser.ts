import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
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
  | { type: 'ready' }
  | { type: 'partial'; text: string; audio_end: number }
  | { type: 'final'; start: number; end: number; words: Word[] }
  | { type: 'end'; duration: number };

export interface SphinxOptions {
  /** Emit a partial hypothesis every this many ms of audio (0 = none). */
  partialMs?: number;
  maxUtteranceSeconds?: number;
  onMessage?: (m: SphinxMessage) => void;
}

export interface SphinxResult {
  finals: Array<Extract<SphinxMessage, { type: 'final' }>>;
  duration: number;
}

/**
 * One recogniser session: a pocketsphinx process fed 16 kHz mono s16le PCM on stdin. `write` honours
 * back-pressure; `end` closes the input; `result` resolves after the recogniser flushed everything.
 */
export class SphinxSession {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly finals: SphinxResult['finals'] = [];
  private stderr = '';
  readonly result: Promise<SphinxResult>;

  constructor(opts: SphinxOptions = {}) {
    if (!existsSync(SPHINX_SCRIPT)) throw new RecogniserError(`recogniser script missing at ${SPHINX_SCRIPT}`);
    const args = [SPHINX_SCRIPT, '--model-dir', SPHINX_MODEL_DIR, '--partial-ms', String(opts.partialMs ?? 0)];
    if (opts.maxUtteranceSeconds) args.push('--max-utterance', String(opts.maxUtteranceSeconds));
    this.child = spawn(SPHINX_PYTHON, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdin.on('error', () => {}); // surfaced through the exit status
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    const lines = createInterface({ input: this.child.stdout });
    let end: number | undefined;
    lines.on('line', (line) => {
      let msg: SphinxMessage;
      try {
        msg = JSON.parse(line) as SphinxMessage;
      } catch {
        return;
      }
      if (msg.type === 'final') this.finals.push(msg);
      if (msg.type === 'end') end = msg.duration;
      opts.onMessage?.(msg);
    });
    this.result = new Promise<SphinxResult>((resolve, reject) => {
      this.child.once('error', (e) => reject(new RecogniserError(`cannot start recogniser (${SPHINX_PYTHON}): ${e.message}`, { cause: e })));
      this.child.once('close', (code, signal) => {
        lines.close();
        if (code === 0 && end !== undefined) resolve({ finals: this.finals, duration: end });
        else reject(new RecogniserError(`recogniser exited with ${signal ?? code}: ${this.stderr.trim().split('\n').slice(-3).join(' | ')}`));
      });
    });
    this.result.catch(() => {});
  }

  /** Write PCM; resolves when the pipe can take more (back-pressure). */
  write(pcm: Buffer): Promise<void> {
    if (this.child.stdin.destroyed) return Promise.resolve();
    if (this.child.stdin.write(pcm)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.child.stdin.off('drain', done);
        this.child.off('close', done);
        resolve();
      };
      this.child.stdin.once('drain', done);
      this.child.once('close', done);
    });
  }

  end(): Promise<SphinxResult> {
    this.child.stdin.end();
    return this.result;
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}
