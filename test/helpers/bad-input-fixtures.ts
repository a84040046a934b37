/**
 * Builders for bad and odd inputs, shared by the processor-level test (test/core/process-attempt.bad-inputs)
 * and the chaos suite's bad-input scenario (through worker processes). Everything is generated
 * (flite + ffmpeg + hand-built headers); nothing binary is committed.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const SPEECH_TEXT = 'the quick brown fox jumps over the lazy dog';
export const RATE = 16000;

export function ffmpeg(...args: string[]): void {
  execFileSync('ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', ...args]);
}

/** A canonical RIFF/WAVE header (+ `data`), with any declared data size, and optional extra chunks before `data`. */
export function wav(data: Buffer, o: { rate?: number; channels?: number; bits?: number; tag?: number; declared?: number; riffSize?: number; before?: Buffer } = {}): Buffer {
  const rate = o.rate ?? RATE;
  const channels = o.channels ?? 1;
  const bits = o.bits ?? 16;
  const blockAlign = (channels * bits) / 8;
  const fmt = Buffer.alloc(24);
  fmt.write('fmt ', 0, 'latin1');
  fmt.writeUInt32LE(16, 4);
  fmt.writeUInt16LE(o.tag ?? 1, 8);
  fmt.writeUInt16LE(channels, 10);
  fmt.writeUInt32LE(rate, 12);
  fmt.writeUInt32LE(rate * blockAlign, 16);
  fmt.writeUInt16LE(blockAlign, 20);
  fmt.writeUInt16LE(bits, 22);
  const dataHdr = Buffer.alloc(8);
  dataHdr.write('data', 0, 'latin1');
  dataHdr.writeUInt32LE(o.declared ?? data.length, 4);
  const before = o.before ?? Buffer.alloc(0);
  const riff = Buffer.alloc(12);
  riff.write('RIFF', 0, 'latin1');
  riff.writeUInt32LE(o.riffSize ?? Math.min(0xffffffff, 4 + fmt.length + before.length + 8 + (o.declared ?? data.length)), 4);
  riff.write('WAVE', 8, 'latin1');
  return Buffer.concat([riff, fmt, before, dataHdr, data]);
}

/** Deterministic pseudo-random bytes (xorshift32), so a failure can be reproduced. */
export function pseudoRandom(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** The first `fraction` of `bytes` (a cut-off upload). */
export const cut = (bytes: Buffer, fraction: number) => bytes.subarray(0, Math.floor(bytes.length * fraction));

/** The synthesised sentence and encoders over it, in a scratch directory. */
export class SpeechKit {
  /** The sentence (0.6 s of silence at both ends), 16 kHz mono WAV. */
  readonly speechWav: string;
  /** Its raw s16le samples. */
  readonly speechPcm: Buffer;

  constructor(readonly dir: string) {
    const raw = join(dir, 'flite.wav');
    execFileSync('flite', ['-voice', 'kal16', '-t', SPEECH_TEXT, '-o', raw]);
    this.speechWav = join(dir, 'speech.wav');
    ffmpeg('-i', raw, '-af', 'adelay=600:all=1,apad=pad_dur=0.6', '-ar', String(RATE), '-ac', '1', '-c:a', 'pcm_s16le', this.speechWav);
    this.speechPcm = this.encode('speech.raw', ['-f', 's16le']);
  }

  /** Encode the speech (optionally padded to `seconds`) with ffmpeg `args` into a file named `name`. */
  encode(name: string, args: string[], opts: { input?: string[]; seconds?: number } = {}): Buffer {
    const out = join(this.dir, name);
    const pad = opts.seconds ? ['-af', `apad=whole_dur=${opts.seconds}`] : [];
    ffmpeg(...(opts.input ?? ['-i', this.speechWav]), ...pad, ...args, out);
    return readFileSync(out);
  }
}
