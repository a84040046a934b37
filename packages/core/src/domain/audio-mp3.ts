import { ascii, view, type HeaderResult } from './audio-bytes';

// MPEG audio frame headers (ISO 11172-3 / 13818-3). version: 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5;
// layer: 3 = I, 2 = II, 1 = III.
const RATES: Record<number, number[]> = { 3: [44100, 48000, 32000], 2: [22050, 24000, 16000], 0: [11025, 12000, 8000] };
const KBPS = {
  v1l1: [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
  v1l2: [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
  v1l3: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  v2l1: [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
  v2l23: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
};
/** How far past the ID3 tag the first frame is looked for (encoders may leave padding or junk). */
const SCAN_BYTES = 16 * 1024;

interface Frame {
  kbps: number;
  rate: number;
  samples: number;
  length: number;
  sideInfo: number;
  crc: boolean;
  /** Version, layer and sample rate: every frame of one stream has the same (not the bitrate: VBR). */
  kind: number;
}

export function mp3FrameAt(b: Uint8Array, off: number): Frame | null {
  if (off + 4 > b.length) return null;
  const h = view(b).getUint32(off);
  if ((h & 0xffe00000) >>> 0 !== 0xffe00000) return null;
  const version = (h >>> 19) & 3;
  const layer = (h >>> 17) & 3;
  const bitrateIdx = (h >>> 12) & 15;
  const rateIdx = (h >>> 10) & 3;
  // Reserved values, free format (index 0: no bitrate to size frames by) and reserved emphasis.
  if (version === 1 || layer === 0 || bitrateIdx === 0 || bitrateIdx === 15 || rateIdx === 3 || (h & 3) === 2) return null;
  const v1 = version === 3;
  const table = layer === 3 ? (v1 ? KBPS.v1l1 : KBPS.v2l1) : v1 ? (layer === 2 ? KBPS.v1l2 : KBPS.v1l3) : KBPS.v2l23;
  const kbps = table[bitrateIdx]!;
  const rate = RATES[version]![rateIdx]!;
  const pad = (h >>> 9) & 1;
  const samples = layer === 3 ? 384 : layer === 2 || v1 ? 1152 : 576;
  const length = layer === 3 ? (Math.floor((12 * kbps * 1000) / rate) + pad) * 4 : Math.floor(((samples / 8) * kbps * 1000) / rate) + pad;
  const mono = ((h >>> 6) & 3) === 3;
  const sideInfo = v1 ? (mono ? 17 : 32) : mono ? 9 : 17;
  return { kbps, rate, samples, length, sideInfo, crc: ((h >>> 16) & 1) === 0, kind: (((h >>> 17) & 0xf) << 2) | rateIdx };
}

/** The first frame at or after `start` that is followed by another of the same kind (a false sync rarely is). */
function firstFrame(b: Uint8Array, start: number): { off: number; frame: Frame } | null {
  for (let off = start; off + 4 <= b.length && off < start + SCAN_BYTES; off++) {
    if (b[off] !== 0xff) continue;
    const frame = mp3FrameAt(b, off);
    if (!frame) continue;
    const next = off + frame.length;
    if (next + 4 > b.length) return { off, frame };
    if (mp3FrameAt(b, next)?.kind === frame.kind) return { off, frame };
  }
  return null;
}

/**
 * The Xing/Info frame's frame count, less the encoder delay and padding from its LAME-format
 * extension when there is one (LAME, and ffmpeg which writes the same layout): that is the sample
 * count a decoder gives out. undefined when the first frame carries no Xing/Info header.
 */
function xingSamples(b: Uint8Array, off: number, f: Frame): number | null | undefined {
  for (const at of [off + 4 + f.sideInfo, off + 6 + f.sideInfo]) {
    const tag = ascii(b, at, at + 4);
    if (tag !== 'Xing' && tag !== 'Info') continue;
    if (at + 12 > b.length) return undefined;
    const v = view(b);
    const flags = v.getUint32(at + 4);
    if (!(flags & 1)) return null; // a Xing header without a frame count
    const frames = v.getUint32(at + 8);
    let samples = frames * f.samples;
    const lame = at + 8 + (flags & 1 ? 4 : 0) + (flags & 2 ? 4 : 0) + (flags & 4 ? 100 : 0) + (flags & 8 ? 4 : 0);
    if (lame + 24 <= b.length && /^(LAME|Lavc|Lavf|L3\.9|GOGO)/.test(ascii(b, lame, lame + 4))) {
      const delay = (b[lame + 21]! << 4) | (b[lame + 22]! >> 4);
      const padding = ((b[lame + 22]! & 0x0f) << 8) | b[lame + 23]!;
      if (delay + padding < samples) samples -= delay + padding;
    }
    return samples;
  }
  return undefined;
}

/** Bitrates of the whole frames from `off` on within `b`, and where the walk stopped. */
function walkFrames(b: Uint8Array, off: number, kind: number): { kbps: Set<number>; frames: number; samples: number; end: number } {
  const kbps = new Set<number>();
  let frames = 0;
  let samples = 0;
  while (off + 4 <= b.length) {
    const f = mp3FrameAt(b, off);
    if (!f || f.kind !== kind || off + f.length > b.length) break;
    kbps.add(f.kbps);
    frames += 1;
    samples += f.samples;
    off += f.length;
  }
  return { kbps, frames, samples, end: off };
}

/**
 * Duration of an MPEG audio stream whose first frame is at or after `start` (the end of any ID3v2 tag).
 *
 * 1. A Xing/Info (LAME, ffmpeg; VBR and CBR alike) or VBRI (Fraunhofer) header in the first frame
 *    gives the frame count: exact.
 * 2. Without one, the whole object in `b`: every frame counted, exact.
 * 3. Otherwise the CBR estimate, (object size − audio start) × 8 / bitrate, when every frame in `b`
 *    has the same bitrate. It is `exact: false`: a head of constant bitrate does not prove the rest is
 *    CBR (a VBR file without a Xing header can open with a run of equal frames), and a trailing ID3v1
 *    or APE tag, which we do not read, counts as audio (128 bytes ≈ 16 ms at 64 kbit/s). Frames of
 *    different bitrates in the head (VBR without an index) or an unknown object size: null, probe.
 */
export function mp3Duration(b: Uint8Array, start: number, size: number | undefined): HeaderResult {
  const first = firstFrame(b, start);
  if (!first) return null;
  const { off, frame } = first;
  if (off + frame.length > b.length && (size === undefined || b.length < size)) return { needMore: off + frame.length };
  const xing = xingSamples(b, off, frame);
  if (xing === null) return null;
  if (xing !== undefined) return { seconds: xing / frame.rate, exact: true, container: 'mp3' };
  const vbri = off + 4 + 32;
  if (ascii(b, vbri, vbri + 4) === 'VBRI' && vbri + 18 <= b.length) {
    return { seconds: (view(b).getUint32(vbri + 14) * frame.samples) / frame.rate, exact: true, container: 'mp3' };
  }
  const walk = walkFrames(b, off, frame.kind);
  const tail = size === undefined ? Infinity : size - walk.end;
  // The whole stream is in `b` (at most a trailing ID3v1 tag after it): count it.
  if (tail === 0 || (tail === 128 && ascii(b, walk.end, walk.end + 3) === 'TAG')) return { seconds: walk.samples / frame.rate, exact: true, container: 'mp3' };
  if (size === undefined || walk.kbps.size !== 1) return null;
  return { seconds: ((size - off) * 8) / (frame.kbps * 1000), exact: false, container: 'mp3' };
}
