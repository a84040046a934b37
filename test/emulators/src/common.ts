/**
 * Shared machinery of the provider emulators: per-key concurrency accounting (the number tests and
 * benchmarks read to prove caps hold), a frame log for pacing assertions, fault hooks, and an
 * incremental recogniser session over the local pocketsphinx engine.
 */
import { performance } from 'node:perf_hooks';
import { SphinxSession, type SphinxMessage } from '@scribe-fleet/core/adapters/sphinx-recogniser';

/** Concurrent sessions per key, with the high-water mark. `enter` refuses above the cap. */
export class ConcurrencyTracker {
  private readonly current = new Map<string, number>();
  private readonly max = new Map<string, number>();
  private readonly refused = new Map<string, number>();
  private readonly listeners = new Set<(key: string, inFlight: number, at: number) => void>();
  constructor(public capFor: (key: string) => number) {}

  /** Be told of every change of a key's in-flight count (benchmarks integrate it over time). */
  onChange(fn: (key: string, inFlight: number, at: number) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  private emit(key: string, n: number): void {
    if (this.listeners.size === 0) return;
    const at = performance.now();
    for (const fn of this.listeners) fn(key, n, at);
  }

  enter(key: string): boolean {
    const n = this.current.get(key) ?? 0;
    if (n >= this.capFor(key)) {
      this.refused.set(key, (this.refused.get(key) ?? 0) + 1);
      return false;
    }
    this.current.set(key, n + 1);
    this.max.set(key, Math.max(this.max.get(key) ?? 0, n + 1));
    this.emit(key, n + 1);
    return true;
  }
  leave(key: string): void {
    const n = Math.max(0, (this.current.get(key) ?? 0) - 1);
    this.current.set(key, n);
    this.emit(key, n);
  }
  inFlight(key: string): number {
    return this.current.get(key) ?? 0;
  }
  maxConcurrent(key: string): number {
    return this.max.get(key) ?? 0;
  }
  refusals(key: string): number {
    return this.refused.get(key) ?? 0;
  }
  reset(): void {
    this.max.clear();
    this.refused.clear();
    for (const [k, v] of this.current) this.max.set(k, v);
  }
}

export interface FrameRecord {
  session: string;
  direction: 'in' | 'out';
  kind: 'binary' | 'text' | 'http';
  size: number;
  /** Milliseconds on the emulator's monotonic clock. */
  at: number;
  /** For text frames: the message type, when it has one. */
  type?: string;
}

/** Every frame received or sent, for pacing and protocol assertions. Bounded to the last `limit`. */
export class FrameLog {
  private readonly records: FrameRecord[] = [];
  constructor(private readonly limit = 200_000) {}
  record(r: Omit<FrameRecord, 'at'> & { at?: number }): void {
    this.records.push({ ...r, at: r.at ?? performance.now() });
    if (this.records.length > this.limit) this.records.splice(0, this.records.length - this.limit);
  }
  frames(session?: string): FrameRecord[] {
    return session ? this.records.filter((r) => r.session === session) : [...this.records];
  }
  clear(): void {
    this.records.length = 0;
  }
}

/** Faults a test can switch on at run time. Each applies to the next matching request/session. */
export interface FaultHooks {
  /** Answer the next N requests / handshakes with HTTP 503, then behave. */
  fail5xxTimes?: number;
  /** Delay the first response byte (REST) or the handshake (WS) by this many ms. */
  slowFirstByteMs?: number;
  /** Accept the next request/connection and never answer it. */
  neverAnswer?: boolean;
  /** Drop the socket (no close frame) after this many ms of received audio in the next session. */
  dropAfterAudioMs?: number;
}

/** The base every emulator handle offers. */
export interface EmulatorHandle {
  readonly name: string;
  /** http://127.0.0.1:port (REST) — WebSocket clients use ws://127.0.0.1:port. */
  readonly url: string;
  readonly port: number;
  readonly concurrency: ConcurrencyTracker;
  readonly frames: FrameLog;
  faults: FaultHooks;
  close(): Promise<void>;
}

export type RecogniserEvent = SphinxMessage;

/** An incremental recogniser session; `partialMs` > 0 gives partial hypotheses as audio arrives. */
export function openRecogniser(opts: { partialMs?: number; onMessage?: (m: SphinxMessage) => void } = {}): SphinxSession {
  return new SphinxSession(opts);
}

/** Words as the recogniser reports them: lowercase, no punctuation. `punctuate` capitalises and ends sentences. */
export function punctuate(words: string[]): string[] {
  return words.map((w, i) => {
    let out = i === 0 ? w.charAt(0).toUpperCase() + w.slice(1) : w;
    if (i === words.length - 1) out += '.';
    return out;
  });
}

export function bearerOrToken(header: string | undefined): { scheme: string; credential: string } | null {
  if (!header) return null;
  const m = /^(\S+)\s+(.+)$/.exec(header.trim());
  return m ? { scheme: m[1]!, credential: m[2]! } : { scheme: '', credential: header.trim() };
}
