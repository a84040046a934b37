import type { HeaderResult } from './audio-bytes';

/**
 * Duration of a native FLAC stream starting at `at` (after any ID3v2 tag): STREAMINFO, always the
 * first metadata block, holds the sample rate (20 bits) and the total samples per channel (36 bits).
 * A total of 0 means "unknown" (an encoder that could not seek back): null, the caller probes.
 */
export function flacDuration(b: Uint8Array, at: number): HeaderResult {
  const si = at + 8; // "fLaC" + the metadata block header
  if (si + 18 > b.length) return { needMore: si + 18 };
  if ((b[at + 4]! & 0x7f) !== 0) return null; // the first block must be STREAMINFO
  const rate = (b[si + 10]! << 12) | (b[si + 11]! << 4) | (b[si + 12]! >> 4);
  const total = (b[si + 13]! & 0x0f) * 2 ** 32 + ((b[si + 14]! << 24) >>> 0) + (b[si + 15]! << 16) + (b[si + 16]! << 8) + b[si + 17]!;
  if (rate === 0 || total === 0) return null;
  return { seconds: total / rate, exact: true, container: 'flac' };
}
