/**
 * Stream checkpoints: how far a paced stream got, so the next attempt resumes there instead of
 * restarting an hour-long file from zero. A checkpoint holds the finalised segments so far (audio
 * time of the whole file) and the offset where they end; the next session starts at that offset and
 * its times are shifted by it. Pure functions; storage is the worker's.
 */
import type { Segment, Transcript } from './transcript';

export interface StreamCheckpoint {
  v: 1;
  /** The job the checkpoint belongs to: a different ETag, provider or model never resumes from it. */
  etag: string;
  provider: string;
  model: string;
  /** Audio seconds covered: the end of the last finalised segment. */
  offsetSeconds: number;
  segments: Segment[];
  updatedAt: string;
}

export function shiftSegment(seg: Segment, by: number): Segment {
  const r3 = (x: number) => Math.round((x + by) * 1000) / 1000;
  return { ...seg, start: r3(seg.start), end: r3(seg.end), words: seg.words.map((w) => ({ ...w, start: r3(w.start), end: r3(w.end) })) };
}

/** The whole-file transcript from a checkpoint and the transcript of the session that resumed after it. */
export function resumeTranscript(cp: StreamCheckpoint, rest: Transcript): Transcript {
  return { ...rest, duration: cp.offsetSeconds + rest.duration, segments: [...cp.segments, ...rest.segments.map((s) => shiftSegment(s, cp.offsetSeconds))] };
}

/** Bytes of 16 kHz mono s16le PCM to skip to resume at `seconds` (whole samples). */
export function resumeByteOffset(seconds: number): number {
  return Math.max(0, Math.floor(seconds * 16_000)) * 2;
}
