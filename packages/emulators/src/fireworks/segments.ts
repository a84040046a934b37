/**
 * Fireworks transcription messages (providers.md §4.4) on the state-dict model: every message carries
 * the segments that changed, keyed by `id`, and later messages overwrite earlier ones (a segment's
 * partial hypothesis, then its final words, then — when the next segment starts or at a checkpoint — its
 * revised, punctuated text under the same id). `text` is the whole transcript so far; word `is_final`
 * flips to true once stable; `start`/`end` only with `timestamp_granularities` word / segment.
 *
 * Segment ids are strings ("0", "1", …), as the streaming guide's messages show them (seeds/
 * fireworks-streaming.txt); the API reference's "number" is not what the examples carry.
 */
import type { Word } from '@scribe-fleet/core';
import { punctuate } from '../kit';
import { round3, type RecognisedUtterance } from '../kit';

interface FwWord {
  word: string;
  language: string;
  probability: number;
  hallucination_score: number;
  is_final: boolean;
  start?: number;
  end?: number;
}

interface SegmentState {
  id: number;
  text: string;
  words: Array<{ word: string; start: number; end: number; probability: number; is_final: boolean }>;
  final: boolean;
  revised: boolean;
}

export interface SegmentStyle {
  language: string;
  /** `timestamp_granularities` includes word / segment. */
  wordTimes: boolean;
  segmentTimes: boolean;
  /** Re-send finished segments with revised text (default true). */
  reviseEarlier: boolean;
}

export class Segments {
  private readonly all = new Map<number, SegmentState>();
  private nextId = 0;
  /** The utterance in progress. */
  private current: SegmentState | undefined;
  /** Stream seconds where the next words start at the earliest (the last final word's end, or the last endpoint). */
  private floor = 0;
  /** Finished segments re-sent with revised text. */
  revisions = 0;

  constructor(
    private readonly style: SegmentStyle,
    private readonly send: (msg: Record<string, unknown>) => void,
  ) {}

  /** A partial hypothesis of the utterance in progress (a new segment when none is open). */
  partial(text: string, audioEnd: number): void {
    const words = text.split(/\s+/).filter(Boolean);
    if (words.length === 0) return;
    const starting = !this.current;
    const seg = this.current ?? this.open();
    if (seg.text === words.join(' ')) return;
    const prev = seg.words.map((w) => w.word);
    let stable = 0;
    while (stable < words.length - 1 && stable < prev.length && words[stable] === prev[stable]) stable += 1;
    const step = Math.max(0.05, (audioEnd - this.floor) / words.length);
    seg.words = words.map((w, i) => ({
      word: w,
      start: round3(this.floor + i * step),
      end: round3(this.floor + (i + 1) * step),
      probability: 0.5,
      is_final: i < stable, // flips to true once stable
    }));
    seg.text = words.join(' ');
    // A new segment starting is when earlier ones get revised.
    this.emit([...(starting ? this.revise(seg) : []), seg]);
  }

  /** A finished utterance: the open segment (or a new one) becomes final with the recogniser's words. */
  final(u: RecognisedUtterance): void {
    if (u.words.length === 0) return;
    const seg = this.current ?? this.open();
    this.current = undefined;
    seg.words = u.words.map((w: Word) => ({ word: w.word, start: w.start, end: w.end, probability: w.confidence, is_final: true }));
    seg.text = seg.words.map((w) => w.word).join(' ');
    seg.final = true;
    this.floor = Math.max(this.floor, u.end);
    this.emit([seg]);
  }

  /** An endpoint (after the recogniser's flush): the open segment, if any is left, is final as it stands. */
  settle(at?: number): void {
    if (at !== undefined) this.floor = Math.max(this.floor, at);
    const seg = this.current;
    this.current = undefined;
    if (!seg || seg.words.length === 0) return;
    seg.final = true;
    for (const w of seg.words) w.is_final = true;
    this.emit([seg]);
  }

  /** Every finished segment not yet revised gets its revised text now. */
  reviseFinished(): void {
    this.emit(this.revise());
  }

  /** `stt.state.clear`: the utterance in progress is dropped. */
  clear(): void {
    if (this.current) this.all.delete(this.current.id);
    this.current = undefined;
  }

  private open(): SegmentState {
    const seg: SegmentState = { id: this.nextId++, text: '', words: [], final: false, revised: false };
    this.all.set(seg.id, seg);
    this.current = seg;
    return seg;
  }

  private revise(except?: SegmentState): SegmentState[] {
    if (!this.style.reviseEarlier) return [];
    const out: SegmentState[] = [];
    for (const s of this.all.values()) {
      if (s.final && !s.revised && s !== except) {
        s.revised = true;
        this.revisions += 1;
        out.push(s);
      }
    }
    return out;
  }

  private texts(s: SegmentState): string[] {
    return s.revised ? punctuate(s.words.map((w) => w.word)) : s.words.map((w) => w.word);
  }

  private wire(s: SegmentState): { seg: Record<string, unknown>; words: FwWord[] } {
    const texts = this.texts(s);
    const words: FwWord[] = s.words.map((w, i) => ({
      word: texts[i]!,
      language: this.style.language,
      probability: w.probability,
      hallucination_score: 0.01,
      is_final: w.is_final,
      ...(this.style.wordTimes ? { start: w.start, end: w.end } : {}),
    }));
    const seg: Record<string, unknown> = { id: String(s.id), text: s.revised ? texts.join(' ') : s.text, words };
    if (this.style.segmentTimes && s.words.length) {
      seg.start = s.words[0]!.start;
      seg.end = s.words[s.words.length - 1]!.end;
    }
    return { seg, words };
  }

  /** A verbose_json message carrying `changed` segments; `text` is the whole transcript so far. */
  private emit(changed: SegmentState[]): void {
    if (changed.length === 0) return;
    const ordered = [...this.all.values()].sort((a, b) => a.id - b.id);
    const parts = changed.map((s) => this.wire(s));
    this.send({
      task: 'transcribe',
      language: this.style.language,
      text: ordered.map((s) => this.texts(s).join(' ')).filter(Boolean).join(' '),
      words: parts.flatMap((x) => x.words),
      segments: parts.map((x) => x.seg),
    });
  }
}
