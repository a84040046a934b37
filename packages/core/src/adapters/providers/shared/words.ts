/**
 * Provider words as transcript words, and results kept by index as the transcript's segments: the
 * conversions the streaming clients share (AssemblyAI turns, Fireworks segments).
 */
import { segmentFromWords, type Segment, type Word } from '../../../domain/transcript';

/**
 * A provider's word as a transcript word: `word` is the bare lower-case token; text that carries
 * punctuation or casing (formatted output) is kept as `punctuated_word`.
 */
export function transcriptWord(text: string, start: number, end: number, confidence: number): Word {
  const plain = text.toLowerCase().replace(/[^\p{L}\p{N}']+/gu, '');
  const w: Word = { word: plain || text, start, end, confidence };
  if (plain !== text) w.punctuated_word = text;
  return w;
}

/**
 * Results kept by index (AssemblyAI `turn_order`, Fireworks segment id) as segments in index order. A
 * result without words is left out; `text`, the provider's own text of the result when it has one
 * (formatted, punctuated), replaces the words joined.
 */
export function segmentsInOrder<T>(results: ReadonlyMap<number, T>, words: (r: T) => Word[], text: (r: T) => string | undefined): Segment[] {
  const segments: Segment[] = [];
  for (const index of [...results.keys()].sort((a, b) => a - b)) {
    const result = results.get(index)!;
    const ws = words(result);
    if (ws.length === 0) continue;
    const seg = segmentFromWords(ws);
    const own = text(result);
    if (own) seg.text = own;
    segments.push(seg);
  }
  return segments;
}
