/**
 * The live session's messages out (providers.md §2.4, §2.5): interims, finals with their flags,
 * SpeechStarted and UtteranceEnd, in audio time (`start`/`duration` contiguous from 0).
 *
 * Every flush of the recogniser (an endpoint, Finalize, the end of the stream) is a boundary in
 * stream time. The last final before a boundary carries that boundary's flags — `speech_final: true`
 * for a pause, `from_finalize: true` for Finalize/CloseStream, plain `is_final` for a max-length cut —
 * so a final is held back until the next message shows whether it was the last one: a later final or
 * interim, or the boundary's flush having delivered everything.
 */
import type { RecognisedUtterance } from '../../kit';
import { isTrue, utteranceEndMs } from '../query';
import { liveResults, round, type ChannelIndex, type LiveWord, type ResultFlags } from '../results';
import { UtteranceEndRule } from './utterance-end';

export type BoundaryKind = 'pause' | 'max' | 'finalize' | 'idle';

const FLAGS: Record<BoundaryKind | 'within', ResultFlags> = {
  pause: { is_final: true, speech_final: true, from_finalize: false },
  max: { is_final: true, speech_final: false, from_finalize: false },
  finalize: { is_final: true, speech_final: false, from_finalize: true },
  idle: { is_final: true, speech_final: false, from_finalize: false },
  within: { is_final: true, speech_final: false, from_finalize: false },
};

const INTERIM: ResultFlags = { is_final: false, speech_final: false, from_finalize: false };

interface Boundary {
  /** Stream seconds (rounded to ms like the word times). */
  at: number;
  kind: BoundaryKind;
}

export interface OutputContext {
  q: URLSearchParams;
  model: string;
  requestId: string;
  send(msg: Record<string, unknown>): void;
  /** Seconds of audio fed to the recogniser so far. */
  fedSeconds(): number;
  /** The channel this output speaks for, `[c, N]` (default `[0, 1]`): Results `channel_index`, SpeechStarted/UtteranceEnd `channel`. */
  channel?: ChannelIndex;
}

export class LiveOutput {
  private cursor = 0;
  private held: RecognisedUtterance | undefined;
  private readonly boundaries: Boundary[] = [];
  private speechStarted = false;
  private readonly vadEvents: boolean;
  private readonly interims: boolean;
  private readonly utteranceEnd: UtteranceEndRule | undefined;
  private readonly channel: ChannelIndex;

  constructor(private readonly ctx: OutputContext) {
    this.channel = ctx.channel ?? [0, 1];
    this.vadEvents = isTrue(ctx.q, 'vad_events');
    this.interims = isTrue(ctx.q, 'interim_results');
    const ue = utteranceEndMs(ctx.q);
    if (ue !== null) this.utteranceEnd = new UtteranceEndRule(ue, (lastWordEnd) => ctx.send({ type: 'UtteranceEnd', channel: this.channel, last_word_end: lastWordEnd }));
  }

  /** The recogniser is flushed at `at`; call the returned function once that flush delivered its finals. */
  boundary(at: number, kind: BoundaryKind): () => void {
    const b: Boundary = { at, kind };
    this.boundaries.push(b);
    return () => this.settleThrough(b);
  }

  /** PCM fed to the recogniser (the UtteranceEnd clock runs on it). */
  onAudio(pcm: Buffer, fedSeconds: number): void {
    this.utteranceEnd?.onAudio(pcm, fedSeconds);
  }

  onPartial(text: string, audioEnd: number): void {
    const words = text.split(/\s+/).filter(Boolean);
    if (!words.length) return;
    // A partial past a boundary comes from the recogniser after the flush: the flush is complete.
    this.cross((b) => b.at < audioEnd);
    this.releaseHeld(FLAGS.within);
    if (this.vadEvents && !this.speechStarted) {
      this.speechStarted = true;
      this.ctx.send({ type: 'SpeechStarted', channel: this.channel, timestamp: round(this.cursor) });
    }
    if (!this.interims) return;
    const start = this.cursor;
    const end = Math.max(start, audioEnd);
    const step = (end - start) / words.length;
    const ws = words.map((w, i) => ({ word: w, start: round(start + i * step), end: round(start + (i + 1) * step), confidence: 0.5 }));
    this.results(start, end, ws, INTERIM);
    this.utteranceEnd?.onInterimWords();
  }

  onFinal(u: RecognisedUtterance): void {
    this.cross((b) => b.at <= u.start);
    this.releaseHeld(FLAGS.within);
    if (this.vadEvents && !this.speechStarted && u.words.length) {
      this.ctx.send({ type: 'SpeechStarted', channel: this.channel, timestamp: round(u.words[0]!.start) });
    }
    this.speechStarted = false;
    this.held = u;
  }

  /** Flushed audio that produced no words still closes its range with an empty final (§7.3 Finalize). */
  emptyFinal(kind: BoundaryKind): void {
    const fed = this.ctx.fedSeconds();
    if (fed - this.cursor < 0.001) return;
    this.results(this.cursor, fed, [], FLAGS[kind]);
    this.cursor = fed;
  }

  private cross(passed: (b: Boundary) => boolean): void {
    while (this.boundaries.length && passed(this.boundaries[0]!)) this.settle(this.boundaries.shift()!);
  }

  private settleThrough(b: Boundary): void {
    if (!this.boundaries.includes(b)) return; // already crossed by a later message
    for (let x = this.boundaries.shift(); x; x = x === b ? undefined : this.boundaries.shift()) this.settle(x);
  }

  /** The held final, if it lies before `b`, was the last of its segment. */
  private settle(b: Boundary): void {
    if (this.held && this.held.start < b.at) this.releaseHeld(FLAGS[b.kind]);
  }

  private releaseHeld(flags: ResultFlags): void {
    const u = this.held;
    if (!u) return;
    this.held = undefined;
    const start = this.cursor;
    const end = Math.max(start, u.end);
    const words = u.words.map((w) => ({ word: w.word, start: w.start, end: w.end, confidence: w.confidence }));
    this.results(start, end, words, flags);
    this.cursor = end;
    if (words.length) this.utteranceEnd?.onFinalWords(round(words[words.length - 1]!.end), this.ctx.fedSeconds());
  }

  private results(start: number, end: number, words: LiveWord[], flags: ResultFlags): void {
    this.ctx.send(liveResults(this.ctx.q, this.ctx.model, this.ctx.requestId, start, end, words, flags, this.channel));
  }
}
