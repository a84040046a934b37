import { ascii, view, type HeaderResult } from './audio-bytes';

/** AIFF-C compression types whose COMM frame count is a count of sample frames (uncompressed PCM, G.711). */
const FRAME_COUNTED = new Set(['NONE', 'sowt', 'twos', 'raw ', 'fl32', 'FL32', 'fl64', 'FL64', 'in24', 'in32', '42ni', 'ulaw', 'ULAW', 'alaw', 'ALAW']);

/** IEEE 754 80-bit extended (big-endian), the form of AIFF's sample rate. */
function extended80(v: DataView, at: number): number {
  const exp = v.getUint16(at) & 0x7fff;
  const sign = v.getUint16(at) & 0x8000 ? -1 : 1;
  const mantissa = v.getUint32(at + 2) * 2 ** 32 + v.getUint32(at + 6);
  if (exp === 0 && mantissa === 0) return 0;
  return sign * mantissa * 2 ** (exp - 16383 - 63);
}

/** Duration of an AIFF / AIFF-C file from its COMM chunk (sample frames / sample rate). */
export function aiffDuration(b: Uint8Array, size: number | undefined): HeaderResult {
  const aifc = ascii(b, 8, 12) === 'AIFC';
  const v = view(b);
  for (let off = 12; ; ) {
    if (off + 8 > b.length) return { needMore: off + 8 };
    const id = ascii(b, off, off + 4);
    const chunkSize = v.getUint32(off + 4);
    const body = off + 8;
    if (id === 'COMM') {
      const need = aifc ? 22 : 18;
      if (body + need > b.length) return { needMore: body + need };
      if (aifc && !FRAME_COUNTED.has(ascii(b, body + 18, body + 22))) return null; // packets, not frames (ima4, …)
      const frames = v.getUint32(body + 2);
      const rate = extended80(v, body + 8);
      if (!(rate > 0)) return null;
      return { seconds: frames / rate, exact: true, container: 'aiff' };
    }
    off = body + chunkSize + (chunkSize % 2);
    if (size !== undefined && off >= size) return null;
  }
}
