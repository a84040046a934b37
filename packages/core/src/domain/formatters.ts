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
  /** The channel it was heard on (multichannel transcripts). */
  channel?: number;
  /** Its speaker (diarized transcripts). */
  speaker?: number;
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

/** A word's speaker: its own label, else its segment's. */
const speakerOf = (w: Word, seg: Segment) => w.speaker ?? seg.speaker;

/**
 * Which labels the text formats need: channels when the segments were heard on more than one
 * channel, speakers when more than one speaker speaks. A single voice is left unlabelled.
 */
export function labelsFor(segments: Segment[]): { channel: boolean; speaker: boolean } {
  const channels = new Set<number>();
  const speakers = new Set<number>();
  for (const seg of segments) {
    if (seg.channel !== undefined) channels.add(seg.channel);
    if (seg.speaker !== undefined) speakers.add(seg.speaker);
    for (const w of seg.words) if (w.speaker !== undefined) speakers.add(w.speaker);
  }
  return { channel: channels.size > 1, speaker: speakers.size > 1 };
}

/**
 * Split segments into caption cues at segment boundaries, speaker changes, long pauses and the
 * length limits, in time order across channels. Cues of one channel never overlap and have positive
 * length; cues of two channels may (two people talking at once).
 */
export function toCues(segments: Segment[], opts: CueOptions = DEFAULT_CUE_OPTIONS): Cue[] {
  const cues: Cue[] = [];
  const withVoice = (c: Cue, seg: Segment, speaker: number | undefined): Cue => {
    if (seg.channel !== undefined) c.channel = seg.channel;
    if (speaker !== undefined) c.speaker = speaker;
    return c;
  };
  for (const seg of segments) {
    if (seg.words.length === 0) {
      if (seg.text.trim()) cues.push(withVoice({ start: seg.start, end: seg.end, text: seg.text.trim() }, seg, seg.speaker));
      continue;
    }
    let cur: Word[] = [];
    const flush = () => {
      if (cur.length) cues.push(withVoice({ start: cur[0]!.start, end: cur[cur.length - 1]!.end, text: cur.map(wordText).join(' ') }, seg, speakerOf(cur[0]!, seg)));
      cur = [];
    };
    for (const w of seg.words) {
      if (cur.length) {
        const first = cur[0]!;
        const last = cur[cur.length - 1]!;
        const text = `${cur.map(wordText).join(' ')} ${wordText(w)}`;
        if (w.end - first.start > opts.maxCueSeconds || text.length > opts.maxCueChars || w.start - last.end > opts.maxGapSeconds || speakerOf(w, seg) !== speakerOf(first, seg)) flush();
      }
      cur.push(w);
    }
    flush();
  }
  const ordered = cues.map((c, i) => ({ c, i })).sort((a, b) => a.c.start - b.c.start || (a.c.channel ?? 0) - (b.c.channel ?? 0) || a.i - b.i).map(({ c }) => c);
  const lastOf = new Map<number, Cue>();
  for (const c of ordered) {
    const prev = lastOf.get(c.channel ?? 0);
    if (prev && prev.end > c.start) prev.end = c.start;
    lastOf.set(c.channel ?? 0, c);
  }
  for (const c of ordered) if (c.end <= c.start) c.end = c.start + 0.001;
  return ordered;
}

/** `[channel 1] Speaker 0: ` — the labels a line or cue needs (channel and speaker numbers as in the JSON). */
function labelOf(c: { channel?: number | undefined; speaker?: number | undefined }, need: { channel: boolean; speaker: boolean }): string {
  return `${need.channel ? `[channel ${c.channel ?? 0}] ` : ''}${need.speaker && c.speaker !== undefined ? `Speaker ${c.speaker}: ` : ''}`;
}

/** A WebVTT voice name: `Speaker 0`, `Channel 1`, or `Channel 1 Speaker 0` (null: no voice to name). */
function voiceOf(c: Cue, need: { channel: boolean; speaker: boolean }): string | null {
  const parts = [need.channel ? `Channel ${c.channel ?? 0}` : '', need.speaker && c.speaker !== undefined ? `Speaker ${c.speaker}` : ''].filter(Boolean);
  return parts.length ? parts.join(' ') : null;
}

export function toSrt(t: Transcript, opts?: CueOptions): string {
  const need = labelsFor(t.segments);
  return toCues(t.segments, opts)
    .map((c, i) => `${i + 1}\n${srtTimestamp(c.start)} --> ${srtTimestamp(c.end)}\n${labelOf(c, need)}${c.text}\n`)
    .join('\n');
}

export function toVtt(t: Transcript, opts?: CueOptions): string {
  const need = labelsFor(t.segments);
  const body = toCues(t.segments, opts)
    .map((c) => {
      const voice = voiceOf(c, need);
      return `${vttTimestamp(c.start)} --> ${vttTimestamp(c.end)}\n${voice ? `<v ${voice}>` : ''}${c.text}\n`;
    })
    .join('\n');
  return `WEBVTT\n\n${body}`;
}

/**
 * Plain text: one finalised segment per line, in time order; with several channels or speakers,
 * each line labelled (a segment whose words change speaker is one line per speaker's run).
 */
export function toTxt(t: Transcript): string {
  const need = labelsFor(t.segments);
  const lines: string[] = [];
  const ordered = need.channel ? [...t.segments].sort((a, b) => a.start - b.start || (a.channel ?? 0) - (b.channel ?? 0)) : t.segments;
  for (const seg of ordered) {
    if (!need.speaker || seg.words.length === 0) {
      const text = seg.text.trim();
      if (text) lines.push(`${labelOf({ channel: seg.channel, speaker: seg.speaker }, need)}${text}`);
      continue;
    }
    let run: Word[] = [];
    const flush = () => {
      if (run.length) lines.push(`${labelOf({ channel: seg.channel, speaker: speakerOf(run[0]!, seg) }, need)}${run.map(wordText).join(' ')}`);
      run = [];
    };
    for (const w of seg.words) {
      if (run.length && speakerOf(w, seg) !== speakerOf(run[0]!, seg)) flush();
      run.push(w);
    }
    flush();
  }
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
