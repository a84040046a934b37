/**
 * Audio duration from an object's first bytes, without decoding: what a batch plan uses to count
 * audio hours from a ranged GET instead of a whole download. Pure; the caller fetches.
 *
 *   WAV / RF64, AIFF     sample frames from the header (audio-wav.ts, audio-aiff.ts)
 *   FLAC                 STREAMINFO total samples (audio-flac.ts), behind an optional ID3v2 tag
 *   MP3                  Xing/Info or VBRI frame count; else a CBR estimate (audio-mp3.ts)
 *   Matroska / WebM      Segment Info Duration (audio-matroska.ts)
 *   MP4 / M4A / MOV      the sound tracks in `moov`, which may sit after the media: asked for by
 *                        offset (`needRange`), see audio-mp4.ts
 *   Ogg Opus / Vorbis    the last page's granule: the tail is asked for (`needRange`), audio-ogg.ts
 *
 * Anything else (ADTS AAC, AMR, ASF/WMA, AC-3, a streamed file without its lengths): null, and the
 * caller probes the whole object.
 */
import { ascii, id3v2Size, isDuration, type AudioDuration, type HeaderResult, type NeedMore, type NeedRange } from './audio-bytes';
import { aiffDuration } from './audio-aiff';
import { flacDuration } from './audio-flac';
import { matroskaDuration } from './audio-matroska';
import { MP4_FIRST_BOXES, mp4Duration } from './audio-mp4';
import { mp3Duration } from './audio-mp3';
import { oggHeadDuration, oggTailDuration } from './audio-ogg';
import { wavDuration } from './audio-wav';

export { isDuration, type AudioDuration, type HeaderResult, type NeedMore, type NeedRange };

/** How many bytes from the start a header is first looked for in (the plan's first ranged GET). */
export const HEADER_BYTES = 64 * 1024;
/** Bytes past an ID3v2 tag asked for, to find the first MPEG frame (and its Xing header) behind it. */
const AFTER_ID3_BYTES = 8 * 1024;

/** The container the first bytes announce, or undefined when none we read. */
export function sniffContainer(b: Uint8Array): string | undefined {
  const four = ascii(b, 0, 4);
  if ((four === 'RIFF' || four === 'RF64' || four === 'BW64') && ascii(b, 8, 12) === 'WAVE') return 'wav';
  if (four === 'FORM' && /^AIF[FC]$/.test(ascii(b, 8, 12))) return 'aiff';
  if (four === 'OggS') return 'ogg';
  if (four === '\x1a\x45\xdf\xa3') return 'matroska';
  if (MP4_FIRST_BOXES.has(ascii(b, 4, 8))) return 'mp4';
  const id3 = id3v2Size(b);
  if (ascii(b, id3, id3 + 4) === 'fLaC') return 'flac';
  if (id3 > 0 || (b[0] === 0xff && (b[1]! & 0xe0) === 0xe0 && (b[1]! & 0x06) !== 0)) return 'mp3';
  return undefined;
}

/**
 * Duration from the object's first bytes `bytes` (of an object of `size` bytes, when known: the
 * streamed-WAV, CBR-MP3, Ogg and mp4 cases need it). Returns the duration, or what else is needed —
 * `needMore` (the first N bytes: a header runs past `bytes`; N may exceed 64 KiB behind a large ID3v2
 * tag) or `needRange` (bytes elsewhere; then call durationFromRange) — or null: probe the object.
 */
export function durationFromHeader(bytes: Uint8Array, size?: number): AudioDuration | NeedMore | NeedRange | null {
  const container = sniffContainer(bytes);
  const result = parse(container, bytes, size);
  if (result && 'needMore' in result) {
    // Asking again for what we have (or for more than the object holds) would loop: nothing more to learn.
    const whole = size !== undefined && bytes.length >= size;
    if (whole || result.needMore <= bytes.length) return null;
    return size === undefined ? result : { needMore: Math.min(result.needMore, size) };
  }
  return result;
}

function parse(container: string | undefined, b: Uint8Array, size: number | undefined): HeaderResult {
  switch (container) {
    case 'wav':
      return wavDuration(b, size);
    case 'aiff':
      return aiffDuration(b, size);
    case 'ogg':
      return oggHeadDuration(b, size);
    case 'matroska':
      return matroskaDuration(b);
    case 'mp4':
      return mp4Duration(b, 0, size);
    case 'flac':
      return flacDuration(b, id3v2Size(b));
    case 'mp3': {
      const id3 = id3v2Size(b);
      if (id3 + 4 > b.length) return { needMore: id3 + AFTER_ID3_BYTES };
      const r = mp3Duration(b, id3, size);
      return r === null && id3 > 0 && b.length < id3 + AFTER_ID3_BYTES ? { needMore: id3 + AFTER_ID3_BYTES } : r;
    }
    default:
      return null;
  }
}

/**
 * Continue after `needRange`: `range` holds the object's bytes from `range.offset` on. The answer may
 * ask for another range (an mp4 box between the media and the index).
 */
export function durationFromRange(head: Uint8Array, range: { offset: number; bytes: Uint8Array }, size?: number): AudioDuration | NeedRange | null {
  const container = sniffContainer(head);
  let r: HeaderResult = null;
  if (container === 'ogg') r = oggTailDuration(head, range.bytes);
  else if (container === 'mp4') r = mp4Duration(range.bytes, range.offset, size);
  if (r && 'needMore' in r) return null; // only asked for at offset 0, which the head already covered
  if (r && 'needRange' in r && r.needRange.offset === range.offset && r.needRange.length <= range.bytes.length) return null; // no progress
  return r;
}
