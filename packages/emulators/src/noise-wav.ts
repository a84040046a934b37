/**
 * Large test inputs without large files in memory: a 16 kHz mono s16le WAV of an exact size (header +
 * low pseudo-random noise), generated one 1 MiB chunk at a time as a stream. The memory test and the
 * memory benchmark upload multi-GB inputs with it; nothing is recognised in them (benchmark mode).
 */
import { Readable } from 'node:stream';
import { wavHeader } from '@scribe-fleet/core/adapters/providers/openai';

const CHUNK = 1024 * 1024;

/** A WAV of exactly `bytes` bytes (even data length), streamed; `seed` varies the noise. */
export function noiseWav(bytes: number, seed = 1): Readable {
  const dataBytes = bytes - 44 - ((bytes - 44) % 2);
  const noise = Buffer.alloc(CHUNK);
  let x = seed;
  for (let i = 0; i < noise.length; i += 2) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    noise.writeInt16LE((x % 2001) - 1000, i);
  }
  let left = dataBytes;
  return Readable.from(
    (function* () {
      yield wavHeader(dataBytes);
      while (left > 0) {
        const n = Math.min(left, noise.length);
        left -= n;
        yield n === noise.length ? noise : noise.subarray(0, n);
      }
    })(),
    { objectMode: false },
  );
}
