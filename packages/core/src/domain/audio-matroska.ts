import { ascii, view, type HeaderResult } from './audio-bytes';

const EBML = 0x1a45dfa3;
const DOC_TYPE = 0x4282;
const SEGMENT = 0x18538067;
const INFO = 0x1549a966;
const CLUSTER = 0x1f43b675;
const TIMECODE_SCALE = 0x2ad7b1;
const DURATION = 0x4489;
const TRACKS = 0x1654ae6b;
const TRACK_ENTRY = 0xae;
const TRACK_TYPE = 0x83;
const AUDIO = 2;

interface Element {
  id: number;
  body: number;
  /** Body size; undefined for "unknown" (all value bits set: a live stream's Segment or Cluster). */
  size: number | undefined;
}

/** The EBML element header at `at`: a variable-length ID (marker kept) and size (marker dropped). */
function elementAt(b: Uint8Array, at: number): Element | null | 'more' {
  if (at >= b.length) return 'more';
  const idLen = Math.clz32(b[at]!) - 23;
  if (idLen < 1 || idLen > 4) return null;
  if (at + idLen >= b.length) return 'more';
  let id = 0;
  for (let i = 0; i < idLen; i++) id = id * 256 + b[at + i]!;
  const s = at + idLen;
  const sizeLen = Math.clz32(b[s]!) - 23;
  if (sizeLen < 1 || sizeLen > 8) return null;
  if (s + sizeLen > b.length) return 'more';
  let size = b[s]! & (0xff >> sizeLen);
  let allOnes = size === 0xff >> sizeLen;
  for (let i = 1; i < sizeLen; i++) {
    size = size * 256 + b[s + i]!;
    allOnes &&= b[s + i] === 0xff;
  }
  return { id, body: s + sizeLen, size: allOnes ? undefined : size };
}

/** Children of [from, to) in `b`, while whole headers are there. */
function* children(b: Uint8Array, from: number, to: number): Generator<Element> {
  for (let at = from; at < to; ) {
    const e = elementAt(b, at);
    if (!e || e === 'more' || e.size === undefined) return;
    yield e;
    at = e.body + e.size;
  }
}

/** False when `Tracks` (whole in `b`) lists no audio track: a video-only file has no audio to count. */
function hasAudio(b: Uint8Array, tracks: Element): boolean {
  for (const entry of children(b, tracks.body, tracks.body + tracks.size!)) {
    if (entry.id !== TRACK_ENTRY) continue;
    for (const f of children(b, entry.body, entry.body + entry.size!)) if (f.id === TRACK_TYPE && uint(b, f) === AUDIO) return true;
  }
  return false;
}

function uint(b: Uint8Array, e: Element): number {
  let n = 0;
  for (let i = 0; i < (e.size ?? 0); i++) n = n * 256 + b[e.body + i]!;
  return n;
}

/**
 * Duration of a Matroska / WebM file from its Segment's Info element: Duration (a float, in units of
 * TimecodeScale nanoseconds, default 1 ms). A file written to a pipe (live recording) has none: null.
 * Duration is the segment's, all tracks together; when the Tracks element follows in the bytes and
 * lists no audio track, null (the probe then reports the missing audio).
 */
export function matroskaDuration(b: Uint8Array): HeaderResult {
  const head = elementAt(b, 0);
  if (head === 'more') return { needMore: 64 };
  if (!head || head.id !== EBML || head.size === undefined) return null;
  let container = 'matroska';
  for (let at = head.body; at < head.body + head.size; ) {
    const e = elementAt(b, at);
    if (e === 'more' || !e || e.size === undefined) return e === 'more' ? { needMore: head.body + head.size } : null;
    if (e.id === DOC_TYPE && e.body + e.size <= b.length) container = ascii(b, e.body, e.body + e.size).replace(/\0+$/, '') || container;
    at = e.body + e.size;
  }
  const segment = elementAt(b, head.body + head.size);
  if (segment === 'more') return { needMore: head.body + head.size + 12 };
  if (!segment || segment.id !== SEGMENT) return null;
  let found: { seconds: number } | undefined;
  for (let at = segment.body; ; ) {
    const e = elementAt(b, at);
    // Past the bytes with Info read: Tracks (usually right after Info) is not waited for.
    if (e === 'more') return found ? { seconds: found.seconds, exact: true, container } : { needMore: at + 12 };
    if (!e || e.id === CLUSTER || e.size === undefined) return found ? { seconds: found.seconds, exact: true, container } : null;
    const end = e.body + e.size;
    if (e.id === TRACKS && found && end <= b.length) return hasAudio(b, e) ? { seconds: found.seconds, exact: true, container } : null;
    if (e.id === INFO) {
      if (end > b.length) return { needMore: end };
      const seconds = infoSeconds(b, e);
      if (seconds === undefined) return null;
      found = { seconds };
    }
    at = end;
  }
}

/** Info's Duration × TimecodeScale, in seconds; undefined when it has none. */
function infoSeconds(b: Uint8Array, info: Element): number | undefined {
  let scale = 1_000_000;
  let duration: number | undefined;
  for (const f of children(b, info.body, info.body + info.size!)) {
    if (f.id === TIMECODE_SCALE) scale = uint(b, f);
    if (f.id === DURATION && (f.size === 4 || f.size === 8)) duration = f.size === 4 ? view(b).getFloat32(f.body) : view(b).getFloat64(f.body);
  }
  return duration === undefined || !(duration > 0) || scale === 0 ? undefined : (duration * scale) / 1e9;
}
