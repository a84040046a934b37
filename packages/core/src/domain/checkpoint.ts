/**
 * Stream checkpoints: how far a paced stream got, so the next attempt resumes there instead of
 * restarting an hour-long file from zero. A checkpoint holds the finalised segments so far (audio
 * time of the whole file) and the offset where they end; the next session starts at that offset and
 * its times are shifted by it. Pure functions; storage is the worker's.
 *
 * A multichannel stream (segments with `channel`) has one time line per channel, final to different
 * points: the offset is where every channel is final (the earliest of the channels' ends), and
 * `channelEnds` says how far each channel's words were kept, so the words a resumed session hears
 * again on a channel that was further along are dropped, not doubled.
 */
import { segmentFromWords, type Segment, type Transcript } from './transcript';

export interface StreamCheckpoint {
  v: 1;
  /** The job the checkpoint belongs to: a different ETag, provider or model never resumes from it. */
  etag: string;
  provider: string;
  model: string;
  /** Audio seconds covered: the end of the last finalised segment (multichannel: of every channel). */
  offsetSeconds: number;
  segments: Segment[];
  /**
   * Multichannel streams: per channel, the end of its last kept word (null: none yet). A resumed
   * session's words of channel c that start before `channelEnds[c]` were kept already.
   */
  channelEnds?: Array<number | null>;
  updatedAt: string;
}

export function shiftSegment(seg: Segment, by: number): Segment {
  const r3 = (x: number) => Math.round((x + by) * 1000) / 1000;
  return { ...seg, start: r3(seg.start), end: r3(seg.end), words: seg.words.map((w) => ({ ...w, start: r3(w.start), end: r3(w.end) })) };
}

/** `seg` without its words that start before `from` (null when none is left). */
export function wordsFrom(seg: Segment, from: number | null | undefined): Segment | null {
  if (from === null || from === undefined) return seg;
  const words = seg.words.filter((w) => w.start >= from);
  if (words.length === seg.words.length) return seg;
  if (!words.length) return null;
  const out = segmentFromWords(words, seg.channel);
  if (seg.speaker !== undefined) out.speaker = seg.speaker;
  return out;
}

/** The whole-file transcript from a checkpoint and the transcript of the session that resumed after it. */
export function resumeTranscript(cp: StreamCheckpoint, rest: Transcript): Transcript {
  const shifted = rest.segments.map((s) => shiftSegment(s, cp.offsetSeconds));
  if (!cp.channelEnds) return { ...rest, duration: cp.offsetSeconds + rest.duration, segments: [...cp.segments, ...shifted] };
  // Multichannel: each channel's new words from where its kept words end, all merged by time.
  const fresh = shifted.flatMap((s) => wordsFrom(s, cp.channelEnds![s.channel ?? 0]) ?? []);
  const segments = [...cp.segments, ...fresh].sort((a, b) => a.start - b.start || (a.channel ?? 0) - (b.channel ?? 0));
  return { ...rest, duration: cp.offsetSeconds + rest.duration, segments };
}

/** Bytes of 16 kHz s16le PCM of `channels` interleaved channels to skip to resume at `seconds` (whole frames). */
export function resumeByteOffset(seconds: number, channels = 1): number {
  return Math.max(0, Math.floor(seconds * 16_000)) * 2 * channels;
}
