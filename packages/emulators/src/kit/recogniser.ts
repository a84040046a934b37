/**
 * The local recogniser (pocketsphinx) as the emulators use it: an incremental session, and a session
 * that can be flushed mid-stream (so a control message like ForceEndpoint or a checkpoint can turn
 * everything heard so far into final words).
 */
import { SphinxSession, type SphinxMessage } from '@scribe-fleet/core/adapters/sphinx-recogniser';
import type { Word } from '@scribe-fleet/core';
import { round3 } from './util';

export type RecogniserEvent = SphinxMessage;

/** An incremental recogniser session; `partialMs` > 0 gives partial hypotheses as audio arrives. */
export function openRecogniser(opts: { partialMs?: number; onMessage?: (m: SphinxMessage) => void } = {}): SphinxSession {
  return new SphinxSession(opts);
}

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
