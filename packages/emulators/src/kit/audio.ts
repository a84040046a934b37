/** Client audio as the streaming emulators take it: the real-time rate check and the conversion to 16 kHz s16le. */
import { performance } from 'node:perf_hooks';

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

/**
 * Splits interleaved raw audio (frames of `channels` samples of `sampleBytes` bytes each) into one
 * buffer per channel. A WebSocket frame need not end on a frame boundary: the partial frame at its
 * end is carried over to the next call.
 */
export class FrameSplitter {
  private carry: Buffer = Buffer.alloc(0);

  constructor(
    readonly channels: number,
    readonly sampleBytes: number,
  ) {
    if (!Number.isInteger(channels) || channels < 1) throw new RangeError(`channels must be an integer >= 1, got ${channels}`);
  }

  /** Bytes of one frame (one sample of every channel). */
  get frameBytes(): number {
    return this.channels * this.sampleBytes;
  }

  /** Bytes held back (a partial frame). */
  get pending(): number {
    return this.carry.length;
  }

  split(data: Buffer): Buffer[] {
    const buf = this.carry.length ? Buffer.concat([this.carry, data]) : data;
    const whole = buf.length - (buf.length % this.frameBytes);
    this.carry = whole < buf.length ? Buffer.from(buf.subarray(whole)) : Buffer.alloc(0);
    return deinterleave(buf.subarray(0, whole), this.channels, this.sampleBytes);
  }
}

/** Interleaved whole frames → one buffer per channel (`sampleBytes` per sample). */
export function deinterleave(buf: Buffer, channels: number, sampleBytes: number): Buffer[] {
  if (channels === 1) return [buf];
  const frameBytes = channels * sampleBytes;
  const frames = Math.floor(buf.length / frameBytes);
  const out = Array.from({ length: channels }, () => Buffer.allocUnsafe(frames * sampleBytes));
  for (let f = 0, src = 0; f < frames; f++) {
    const dst = f * sampleBytes;
    for (let c = 0; c < channels; c++) {
      buf.copy(out[c]!, dst, src, src + sampleBytes);
      src += sampleBytes;
    }
  }
  return out;
}

/** The mono mix of equal-length 16-bit s16le channel buffers: the mean of each frame's samples. */
export function downmix(channels: Buffer[]): Buffer {
  if (channels.length === 1) return channels[0]!;
  const n = Math.min(...channels.map((c) => c.length)) >> 1;
  const out = Buffer.allocUnsafe(n * 2);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (const c of channels) sum += c.readInt16LE(i * 2);
    out.writeInt16LE(Math.round(sum / channels.length), i * 2);
  }
  return out;
}
