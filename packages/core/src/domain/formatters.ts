import type { OutputFormat } from './job-spec';
import { toDeepgramJson, type Segment, type Transcript, type TranscriptJsonMeta, type Word } from './transcript';

/** Caption cue limits (broadcast-style defaults). */
export interface CueOptions {
  maxCueSeconds: number;
  maxCueChars: number;
  /** A silence longer than this between two words starts a new cue. */
  maxGapSeconds: number;
}
export const DEFAULT_CUE_OPTIONS: CueOptions = { maxCueSeconds: 7, maxCueChars: 84, maxGapSeconds: 1.5 };

export interface Cue {
  start: number;
  end: number;
  text: string;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** `HH:MM:SS<sep>mmm` from seconds, rounded to the millisecond; hours grow past 99 if they must. */
export function formatTimestamp(seconds: number, sep: ',' | '.'): string {
  const totalMs = Math.max(0, Math.round(seconds * 1000));
  const ms = totalMs % 1000;
  const totalS = Math.floor(totalMs / 1000);
  const s = totalS % 60;
  const m = Math.floor(totalS / 60) % 60;
  const h = Math.floor(totalS / 3600);
  return `${pad(h, 2)}:${pad(m, 2)}:${pad(s, 2)}${sep}${pad(ms, 3)}`;
}

export const srtTimestamp = (s: number) => formatTimestamp(s, ',');
export const vttTimestamp = (s: number) => formatTimestamp(s, '.');

const wordText = (w: Word) => w.punctuated_word ?? w.word;

/** Split segments into caption cues at segment boundaries, long pauses and the length limits. */
export function toCues(segments: Segment[], opts: CueOptions = DEFAULT_CUE_OPTIONS): Cue[] {
  const cues: Cue[] = [];
  for (const seg of segments) {
    if (seg.words.length === 0) {
      if (seg.text.trim()) cues.push({ start: seg.start, end: seg.end, text: seg.text.trim() });
      continue;
    }
    let cur: Word[] = [];
    const flush = () => {
      if (cur.length) cues.push({ start: cur[0]!.start, end: cur[cur.length - 1]!.end, text: cur.map(wordText).join(' ') });
      cur = [];
    };
    for (const w of seg.words) {
      if (cur.length) {
        const first = cur[0]!;
        const last = cur[cur.length - 1]!;
        const text = `${cur.map(wordText).join(' ')} ${wordText(w)}`;
        if (w.end - first.start > opts.maxCueSeconds || text.length > opts.maxCueChars || w.start - last.end > opts.maxGapSeconds) flush();
      }
      cur.push(w);
    }
    flush();
  }
  // Cues must not overlap and must have positive length.
  for (let i = 0; i < cues.length; i++) {
    const c = cues[i]!;
    const next = cues[i + 1];
    if (next && c.end > next.start) c.end = next.start;
    if (c.end <= c.start) c.end = c.start + 0.001;
  }
  return cues;
}

export function toSrt(t: Transcript, opts?: CueOptions): string {
  return toCues(t.segments, opts)
    .map((c, i) => `${i + 1}\n${srtTimestamp(c.start)} --> ${srtTimestamp(c.end)}\n${c.text}\n`)
    .join('\n');
}

export function toVtt(t: Transcript, opts?: CueOptions): string {
  const body = toCues(t.segments, opts)
    .map((c) => `${vttTimestamp(c.start)} --> ${vttTimestamp(c.end)}\n${c.text}\n`)
    .join('\n');
  return `WEBVTT\n\n${body}`;
}

/** Plain text: one finalised segment per line. */
export function toTxt(t: Transcript): string {
  const lines = t.segments.map((s) => s.text.trim()).filter(Boolean);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

export const CONTENT_TYPES: Record<OutputFormat, string> = {
  json: 'application/json',
  txt: 'text/plain; charset=utf-8',
  srt: 'application/x-subrip; charset=utf-8',
  vtt: 'text/vtt; charset=utf-8',
};

export function render(t: Transcript, format: OutputFormat, meta: TranscriptJsonMeta): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(toDeepgramJson(t, meta), null, 2)}\n`;
    case 'txt':
      return toTxt(t);
    case 'srt':
      return toSrt(t);
    case 'vtt':
      return toVtt(t);
  }
}
