import { ascii, view, type HeaderResult } from './audio-bytes';

/**
 * Ogg (Opus, Vorbis). Nothing at the start states the length: the last page's granule position is the
 * end of the stream in samples. So the head gives the codec, the serial number and (Opus) the pre-skip,
 * and the caller is asked for the tail: the last 64 KiB always hold the start of the last page (a page
 * is at most 27 + 255 + 255 × 255 = 65 307 bytes).
 */
export const OGG_TAIL_BYTES = 64 * 1024;

interface OggStream {
  codec: 'opus' | 'vorbis';
  serial: number;
  /** Samples per second of the granule positions (48 000 for Opus, whatever the input rate). */
  rate: number;
  /** Samples at the start a decoder drops (Opus pre-skip; 0 for Vorbis). */
  preSkip: number;
}

/** The first page's stream (the codec's identification packet), or null for other codecs. */
export function oggStream(b: Uint8Array): OggStream | null | 'more' {
  if (b.length < 27) return 'more';
  const segments = b[26]!;
  const packet = 27 + segments;
  if (packet + 19 > b.length) return 'more';
  const v = view(b);
  const serial = v.getUint32(14, true);
  if (ascii(b, packet, packet + 8) === 'OpusHead') return { codec: 'opus', serial, rate: 48000, preSkip: v.getUint16(packet + 10, true) };
  if (b[packet] === 1 && ascii(b, packet + 1, packet + 7) === 'vorbis') {
    const rate = v.getUint32(packet + 12, true);
    return rate > 0 ? { codec: 'vorbis', serial, rate, preSkip: 0 } : null;
  }
  return null; // FLAC, Speex, Theora… in Ogg: left to the probe
}

export function oggHeadDuration(b: Uint8Array, size: number | undefined): HeaderResult {
  const stream = oggStream(b);
  if (stream === 'more') return { needMore: 27 + 255 + 19 };
  if (!stream || size === undefined) return null;
  if (size <= b.length) return oggTailDuration(b, b.subarray(0, size));
  const offset = size - OGG_TAIL_BYTES;
  // A tail that overlaps the bytes given: the rest of the object, read as a longer head.
  if (offset <= b.length) return { needMore: size };
  return { needRange: { offset, length: OGG_TAIL_BYTES } };
}

/** The granule of the last whole, CRC-checked page of the head's stream in `tail`, as a duration. */
export function oggTailDuration(head: Uint8Array, tail: Uint8Array): HeaderResult {
  const stream = oggStream(head);
  if (!stream || stream === 'more') return null;
  const v = view(tail);
  for (let at = tail.length - 27; at >= 0; at--) {
    if (tail[at] !== 0x4f || ascii(tail, at, at + 4) !== 'OggS' || tail[at + 4] !== 0) continue;
    const segments = tail[at + 26]!;
    if (at + 27 + segments > tail.length) continue;
    let length = 27 + segments;
    for (let i = 0; i < segments; i++) length += tail[at + 27 + i]!;
    if (at + length > tail.length || !crcMatches(tail, at, length)) continue;
    // Another stream's page last (a chained or multiplexed file): the head's stream length is unknown here.
    if (v.getUint32(at + 14, true) !== stream.serial) return null;
    const lo = v.getUint32(at + 6, true);
    const hi = v.getUint32(at + 10, true);
    if (lo === 0xffffffff && hi === 0xffffffff) continue; // no packet ends on this page
    const granule = hi * 2 ** 32 + lo;
    const samples = granule - stream.preSkip;
    if (samples <= 0) return null;
    return { seconds: samples / stream.rate, exact: true, container: `ogg-${stream.codec}` };
  }
  return null;
}

let table: Uint32Array | undefined;

/** Ogg's CRC-32 (polynomial 0x04C11DB7, not reflected, initial 0) over the page with its CRC field as zeros. */
function crcMatches(b: Uint8Array, at: number, length: number): boolean {
  if (!table) {
    table = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let r = i << 24;
      for (let j = 0; j < 8; j++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
      table[i] = r >>> 0;
    }
  }
  let crc = 0;
  for (let i = 0; i < length; i++) {
    const byte = i >= 22 && i < 26 ? 0 : b[at + i]!;
    crc = ((crc << 8) ^ table[((crc >>> 24) ^ byte) & 0xff]!) >>> 0;
  }
  return crc === view(b).getUint32(at + 22, true);
}
