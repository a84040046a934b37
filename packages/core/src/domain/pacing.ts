import type { Clock } from './clock';
import { LatencyHistogram } from './histogram';
import { isPhasedClock, type PhaseLease } from './scheduler';

/** 16 kHz mono signed 16-bit little-endian: the PCM format every streaming path uses. */
export const PCM_SAMPLE_RATE = 16_000;
export const PCM_BYTES_PER_SECOND = PCM_SAMPLE_RATE * 2;

/** Bytes per second of 16 kHz s16le PCM of `channels` interleaved channels (multichannel streams). */
export function pcmByteRate(channels = 1): number {
  return PCM_BYTES_PER_SECOND * channels;
}

/**
 * Bytes of `chunkMs` of audio at `byteRate`, in whole frames of `frameBytes` (2: one s16le sample;
 * 2 × N for N interleaved channels, so no chunk splits a frame).
 */
export function chunkBytesFor(chunkMs: number, byteRate = PCM_BYTES_PER_SECOND, frameBytes = 2): number {
  const bytes = Math.round((chunkMs / 1000) * byteRate);
  return bytes - (bytes % frameBytes);
}

/**
 * The pacing schedule: chunk n (which starts `bytesBefore` bytes into the audio) is due at
 * `start + bytesBefore / byteRate` seconds, an absolute deadline. A late send never pushes later
 * deadlines back, so lateness does not accumulate into drift (unlike `sleep(chunkMs)` per chunk).
 */
export function deadlineMs(startMs: number, bytesBefore: number, byteRate = PCM_BYTES_PER_SECOND, speed = 1): number {
  return startMs + (bytesBefore * 1000) / (byteRate * speed);
}

/** Re-cut a byte stream into chunks of exactly `chunkBytes` (the last one may be shorter). */
export async function* rechunk(source: AsyncIterable<Uint8Array>, chunkBytes: number): AsyncGenerator<Buffer> {
  if (chunkBytes <= 0 || chunkBytes % 2 !== 0) throw new RangeError(`chunkBytes must be a positive even number, got ${chunkBytes}`);
  let pending: Buffer[] = [];
  let pendingLen = 0;
  for await (const piece of source) {
    let buf = Buffer.isBuffer(piece) ? piece : Buffer.from(piece);
    while (buf.length > 0) {
      const take = Math.min(chunkBytes - pendingLen, buf.length);
      pending.push(buf.subarray(0, take));
      pendingLen += take;
      buf = buf.subarray(take);
      if (pendingLen === chunkBytes) {
        yield pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingLen);
        pending = [];
        pendingLen = 0;
      }
    }
  }
  if (pendingLen > 0) yield Buffer.concat(pending, pendingLen);
}

export interface PacingReport {
  chunks: number;
  bytes: number;
  audioSeconds: number;
  /** Wall time from the first deadline to the last send, ms. */
  elapsedMs: number;
  /** How far the stream's start moved forward onto its phase (0 without a phased clock), ms. */
  phaseOffsetMs: number;
  latenessP50Ms: number;
  latenessP99Ms: number;
  latenessMaxMs: number;
  /** Lateness of the last chunk: how far behind the schedule the stream ended, ms. */
  driftAtEndMs: number;
  /** Sends that happened before their deadline (must be 0: never faster than real time). */
  earlySends: number;
}

export interface PacedSendOptions {
  chunks: AsyncIterable<Buffer>;
  clock: Clock;
  send: (chunk: Buffer, index: number) => void | Promise<void>;
  byteRate?: number;
  /** 1 = real time. Tests and benchmarks may pace faster on a virtual clock; production uses 1. */
  speed?: number;
  signal?: AbortSignal;
  /** Called for each chunk with its lateness, e.g. for a metrics histogram. */
  onLateness?: (ms: number) => void;
  /** The start time; defaults to the clock's now when the first chunk is ready. */
  startMs?: number;
  /**
   * Spread over the chunk period (default true; only with a phased clock, e.g. the system clock): the
   * start moves forward by less than one chunk onto the least-loaded phase, see `DeadlineScheduler`.
   */
  phase?: boolean;
}

const PER_STREAM_HISTOGRAM_MS = 250;

/**
 * Send chunks on absolute deadlines `start + bytesBefore/byteRate`. With a phased clock (the system
 * clock), `start` is the requested start (`startMs`, or now when the first chunk is ready) moved forward
 * by `phaseOffsetMs` (< one chunk) onto the stream's phase; lateness, early sends and drift are measured
 * against those moved deadlines, which are never earlier than the unmoved ones.
 */
export async function pacedSend(opts: PacedSendOptions): Promise<PacingReport> {
  const byteRate = opts.byteRate ?? PCM_BYTES_PER_SECOND;
  const speed = opts.speed ?? 1;
  const clock = opts.clock;
  // 0.1 ms buckets up to 250 ms (10 kB; the default 2 s is 80 kB per stream, 40 MB of typed arrays for
  // 500 streams, enough to set off a full GC when they start together). Beyond 250 ms the quantile is the max.
  const hist = new LatencyHistogram(PER_STREAM_HISTOGRAM_MS);
  let start: number | undefined;
  let phase: PhaseLease | undefined;
  let bytes = 0;
  let index = 0;
  let early = 0;
  let lastLateness = 0;
  let lastSend = 0;
  try {
    for await (const chunk of opts.chunks) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      if (start === undefined) {
        start = opts.startMs ?? clock.now();
        if (opts.phase !== false && isPhasedClock(clock) && chunk.length > 0) {
          phase = clock.reservePhase(start, (chunk.length * 1000) / (byteRate * speed));
          start = phase.startMs;
        }
        lastSend = start;
      }
      const due = deadlineMs(start, bytes, byteRate, speed);
      await clock.sleepUntil(due, opts.signal);
      const at = clock.now();
      const lateness = at - due;
      if (lateness < -1e-6) early += 1;
      hist.record(lateness);
      opts.onLateness?.(lateness);
      lastLateness = lateness;
      lastSend = at;
      await opts.send(chunk, index);
      bytes += chunk.length;
      index += 1;
    }
  } finally {
    phase?.release();
  }
  return {
    chunks: index,
    bytes,
    audioSeconds: bytes / byteRate,
    elapsedMs: start === undefined ? 0 : lastSend - start,
    phaseOffsetMs: phase?.offsetMs ?? 0,
    latenessP50Ms: hist.quantile(0.5),
    latenessP99Ms: hist.quantile(0.99),
    latenessMaxMs: hist.max,
    driftAtEndMs: lastLateness,
    earlySends: early,
  };
}
