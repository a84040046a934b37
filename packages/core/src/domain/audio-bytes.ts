/**
 * Shared types and byte helpers of the audio header parsers (audio-header.ts and its per-container
 * files). Pure: the parsers read bytes the caller fetched and say what else they need.
 */

/** A duration read from a container's own fields. */
export interface AudioDuration {
  seconds: number;
  /**
   * True when the container states the length (sample counts, a frame count, an index); false for an
   * estimate (an MP3 without a Xing/VBRI frame: object size × 8 / bitrate, see audio-mp3.ts).
   */
  exact: boolean;
  /** wav, rf64, aiff, flac, mp3, ogg-opus, ogg-vorbis, mp4, webm, matroska. */
  container: string;
}

/** The first `needMore` bytes of the object are needed (a header runs past the bytes given). */
export interface NeedMore {
  needMore: number;
}

/** Bytes elsewhere in the object are needed: Ogg's last page, an mp4 index (`moov`) behind its media. */
export interface NeedRange {
  needRange: { offset: number; length: number };
}

/** null: the bytes say nothing usable; the caller probes the whole object. */
export type HeaderResult = AudioDuration | NeedMore | NeedRange | null;

export const isDuration = (r: HeaderResult): r is AudioDuration => r !== null && 'seconds' in r;

export function ascii(b: Uint8Array, start: number, end: number): string {
  if (start < 0 || end > b.length) return '';
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(b[i]!);
  return s;
}

export function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Unsigned 64-bit little-endian as a number (exact below 2^53, which every size and count here is). */
export function u64le(v: DataView, at: number): number {
  return v.getUint32(at, true) + v.getUint32(at + 4, true) * 2 ** 32;
}

export function u64be(v: DataView, at: number): number {
  return v.getUint32(at) * 2 ** 32 + v.getUint32(at + 4);
}

/** Size of the ID3v2 tag at `at` (header + body + footer), 0 if none. */
export function id3v2Size(b: Uint8Array, at = 0): number {
  if (at + 10 > b.length || ascii(b, at, at + 3) !== 'ID3') return 0;
  const syncsafe = ((b[at + 6]! & 0x7f) << 21) | ((b[at + 7]! & 0x7f) << 14) | ((b[at + 8]! & 0x7f) << 7) | (b[at + 9]! & 0x7f);
  return 10 + syncsafe + (b[at + 5]! & 0x10 ? 10 : 0);
}
