/**
 * Per-key admission and in-flight accounting: the provider account's concurrency cap (not the
 * emulator's own hardware, which is RecogniserPool) and the numbers tests and benchmarks read to prove
 * caps hold (`GET /_emulator/stats`).
 */
import { performance } from 'node:perf_hooks';

/** Concurrent sessions per key, with the high-water mark. `enter` refuses above the cap. */
export class ConcurrencyTracker {
  private readonly current = new Map<string, number>();
  private readonly max = new Map<string, number>();
  private readonly refused = new Map<string, number>();
  private readonly admitted = new Map<string, number>();
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
    this.admitted.set(key, (this.admitted.get(key) ?? 0) + 1);
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
  /** Count a refusal that did not come from the cap (e.g. a `429-storm` fault). */
  noteRefusal(key: string): void {
    this.refused.set(key, (this.refused.get(key) ?? 0) + 1);
  }
  /** Sessions/requests admitted (`enter` returned true) since the start or the last `reset`. */
  sessions(key: string): number {
    return this.admitted.get(key) ?? 0;
  }
  /** Every key seen, with its numbers (what `GET /_emulator/stats` reports). Caps: `null` = none. */
  snapshot(): Record<string, KeyStats> {
    const keys = new Set([...this.current.keys(), ...this.max.keys(), ...this.refused.keys(), ...this.admitted.keys()]);
    const out: Record<string, KeyStats> = {};
    for (const key of [...keys].sort()) {
      const cap = this.capFor(key);
      out[key] = {
        inFlight: this.inFlight(key),
        maxInFlight: this.maxConcurrent(key),
        sessions: this.sessions(key),
        refused: this.refusals(key),
        cap: Number.isFinite(cap) ? cap : null,
      };
    }
    return out;
  }
  reset(): void {
    this.max.clear();
    this.refused.clear();
    this.admitted.clear();
    for (const [k, v] of this.current) this.max.set(k, v);
  }
}

export interface KeyStats {
  inFlight: number;
  maxInFlight: number;
  /** Admitted since the start (or the last reset). */
  sessions: number;
  /** Refused by the cap or by a rate-limit fault. */
  refused: number;
  cap: number | null;
}
