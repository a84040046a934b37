import { ascii, u64be, view, type HeaderResult } from './audio-bytes';

/** Boxes that may open an ISO base media file (mp4/m4a/mov/3gp). */
export const MP4_FIRST_BOXES = new Set(['ftyp', 'moov', 'mdat', 'free', 'skip', 'wide', 'pnot']);
/** A `moov` larger than this (hours of audio with per-frame tables) is left to the probe. */
export const MAX_MOOV_BYTES = 16 * 1024 * 1024;
/** What is asked for at a top-level box whose size is not yet known. */
const BOX_PEEK_BYTES = 64 * 1024;

interface Box {
  type: string;
  /** Offset of the body and end of the box, relative to the buffer; end is Infinity for "to the end". */
  body: number;
  end: number;
}

function boxAt(b: Uint8Array, at: number, limit: number): Box | null | 'more' {
  if (at + 8 > limit) return 'more';
  const v = view(b);
  const size32 = v.getUint32(at);
  const type = ascii(b, at + 4, at + 8);
  if (size32 === 1) {
    if (at + 16 > limit) return 'more';
    const size = u64be(v, at + 8);
    return size < 16 ? null : { type, body: at + 16, end: at + size };
  }
  if (size32 === 0) return { type, body: at + 8, end: Infinity };
  return size32 < 8 ? null : { type, body: at + 8, end: at + size32 };
}

/** Children of a container box's body [from, to) of `b`. */
function* children(b: Uint8Array, from: number, to: number): Generator<Box> {
  for (let at = from; at < to; ) {
    const box = boxAt(b, at, to);
    if (!box || box === 'more' || box.end > to) return;
    yield box;
    at = box.end;
  }
}

const child = (b: Uint8Array, parent: Box, type: string) => [...children(b, parent.body, parent.end)].find((c) => c.type === type);

/** (timescale, duration) of an mvhd / mdhd full box; tkhd's duration with timescale 0. */
function header(b: Uint8Array, box: Box, kind: 'mvhd' | 'mdhd' | 'tkhd'): { timescale: number; duration: number } | null {
  const v = view(b);
  const version = b[box.body]!;
  const at = box.body + 4 + (version === 1 ? 16 : 8); // after version/flags and the two times
  if (kind === 'tkhd') {
    const d = box.body + 4 + (version === 1 ? 16 : 8) + 8; // track id + reserved
    if (d + (version === 1 ? 8 : 4) > box.end) return null;
    const duration = version === 1 ? u64be(v, d) : v.getUint32(d);
    // All ones: "unknown" (fragmented files).
    return { timescale: 0, duration: duration === 0xffffffff || duration >= 2 ** 53 ? 0 : duration };
  }
  if (at + (version === 1 ? 12 : 8) > box.end) return null;
  return { timescale: v.getUint32(at), duration: version === 1 ? u64be(v, at + 4) : v.getUint32(at + 4) };
}

/**
 * The audio duration in a whole `moov` box: the longest sound track's, from its tkhd (in the movie
 * timescale, after the edit list, so AAC's priming samples are not counted), else its mdhd. Not the
 * mvhd's alone: that is the longest track of any kind (a video longer than its sound).
 */
function moovDuration(b: Uint8Array, moov: Box): HeaderResult {
  if (child(b, moov, 'mvex')) return null; // fragmented: the length is in the fragments
  const mvhdBox = child(b, moov, 'mvhd');
  const mvhd = mvhdBox && header(b, mvhdBox, 'mvhd');
  if (!mvhd || mvhd.timescale === 0) return null;
  let seconds: number | undefined;
  for (const trak of children(b, moov.body, moov.end)) {
    if (trak.type !== 'trak') continue;
    const mdia = child(b, trak, 'mdia');
    const hdlr = mdia && child(b, mdia, 'hdlr');
    if (!hdlr || ascii(b, hdlr.body + 8, hdlr.body + 12) !== 'soun') continue;
    const tkhdBox = child(b, trak, 'tkhd');
    const tkhd = tkhdBox && header(b, tkhdBox, 'tkhd');
    const mdhdBox = child(b, mdia, 'mdhd');
    const mdhd = mdhdBox && header(b, mdhdBox, 'mdhd');
    const s = tkhd && tkhd.duration > 0 ? tkhd.duration / mvhd.timescale : mdhd && mdhd.timescale > 0 ? mdhd.duration / mdhd.timescale : 0;
    if (s > 0) seconds = Math.max(seconds ?? 0, s);
  }
  return seconds === undefined ? null : { seconds, exact: true, container: 'mp4' };
}

/**
 * Walk the top-level boxes of an ISO base media file in `b`, which holds the object's bytes from
 * `base` on, to its `moov`. A `moov` behind the media (`mdat`, the mp4 muxer's default) is asked for
 * by offset: the box headers give it without reading the media. A `moov` already in `b` is parsed; one
 * that starts in `b` but runs past it is asked for whole (up to MAX_MOOV_BYTES).
 */
export function mp4Duration(b: Uint8Array, base: number, size: number | undefined): HeaderResult {
  const limit = size === undefined ? Infinity : size;
  // Bytes right after the head are asked for as a longer head; others by offset (needs the size).
  const need = (offset: number, length: number): HeaderResult => {
    if (base === 0 && offset <= b.length) return { needMore: Math.min(offset + length, limit) };
    return size === undefined ? null : { needRange: { offset, length: Math.min(length, size - offset) } };
  };
  for (let at = base, hops = 0; hops < 64; hops++) {
    if (at >= limit) return null; // no moov in the object
    const rel = at - base;
    const box = rel >= b.length ? 'more' : boxAt(b, rel, b.length);
    if (box === null) return null;
    if (box === 'more') return need(at, BOX_PEEK_BYTES);
    if (box.type === 'moov') {
      if (box.end <= b.length) return moovDuration(b, box);
      const total = box.end - rel;
      return Number.isFinite(total) && total <= MAX_MOOV_BYTES ? need(at, total) : null;
    }
    if (!Number.isFinite(box.end)) return null; // runs to the end of the file, no moov after it
    at = base + box.end;
  }
  return null;
}
