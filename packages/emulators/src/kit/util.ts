/** Small helpers every emulator uses: timers that never keep the process alive, rounding, text. */
import { performance } from 'node:perf_hooks';

/** ms left until `seconds` after `startedAt` (performance.now() time), at least 0. */
export function msUntil(startedAt: number, seconds: number): number {
  return Math.max(0, startedAt + seconds * 1000 - performance.now());
}

/** A timer that does not keep the process alive (service-time delays, drops). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Round to milliseconds (times in seconds). */
export function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Words as the recogniser reports them: lowercase, no punctuation. `punctuate` capitalises and ends sentences. */
export function punctuate(words: string[]): string[] {
  return words.map((w, i) => {
    let out = i === 0 ? w.charAt(0).toUpperCase() + w.slice(1) : w;
    if (i === words.length - 1) out += '.';
    return out;
  });
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
