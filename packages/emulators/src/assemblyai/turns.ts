/**
 * AssemblyAI v3 Turn messages (providers.md §3.4–3.5) built from the local recogniser: partial Turns
 * (`end_of_turn` false, words final once stable, `transcript` only the final words) and the end of a
 * turn (`end_of_turn` true, every word final, `utterance` set, formatted per `format_turns`), word times
 * in integer ms of audio time, `turn_order` from 0.
 *
 * When a turn ends (§3.5): semantic confidence above `end_of_turn_confidence_threshold` and
 * `min_turn_silence` of silence, or `max_turn_silence` of silence anyway. Deviation: the emulator has no
 * semantic model; its confidence at any pause is EOT_CONFIDENCE, so with the default threshold 0.4 a turn
 * ends at `min_turn_silence` (bounded by `max_turn_silence`), and with a threshold ≥ 0.9 ("pure silence")
 * at `max_turn_silence`. Continuous speech with no such pause is cut at a word gap every few seconds (the
 * Endpointer's `max` endpoints), as the service finalises long speech; pauses shorter than the
 * Endpointer's MIN_PAUSE_MS (150 ms) cannot be told from gaps between words.
 *
 * With `speaker_labels=true` (speakers.ts) every Turn carries `speaker_label`, the turn's speaker is
 * decided when it ends, and Terminate is answered with a SpeakerRevision before the Termination.
 */
import type { Word } from '@scribe-fleet/core';
import { punctuate } from '../kit';
import type { LiveSession } from '../live/session';
import type { RecognisedUtterance } from '../kit';
import type { AssemblyAISessionInfo } from './options';
import { UNKNOWN_SPEAKER, type SpeakerLabels } from './speakers';

/** The emulator's end-of-turn confidence at a pause (it has no semantic model). */
export const EOT_CONFIDENCE = 0.9;

export interface TurnDetection {
  threshold: number;
  minSilenceMs: number;
  maxSilenceMs: number;
}

/** The silence after speech that ends a turn, per §3.5 and EOT_CONFIDENCE. */
export function turnSilenceMs(d: TurnDetection): number {
  return EOT_CONFIDENCE > d.threshold ? Math.min(d.minSilenceMs, d.maxSilenceMs) : d.maxSilenceMs;
}

interface TurnWord {
  text: string;
  start: number;
  end: number;
  confidence: number;
  word_is_final: boolean;
}

const ms = (seconds: number) => Math.round(seconds * 1000);

/** An ended turn as its speaker label was sent (for the SpeakerRevision). */
interface EndedTurn {
  order: number;
  start: number;
  end: number;
  label: string;
}

export class Turns {
  private order = 0;
  /** Words the recogniser finalised in the open turn. */
  private words: Word[] = [];
  /** Stream seconds where the next words start at the earliest: the last final word's end, or the last turn's end. */
  private floor = 0;
  /** The recogniser's hypothesis for the utterance in progress, and the one before. */
  private hyp: string[] = [];
  private prevHyp: string[] = [];
  private readonly ended: EndedTurn[] = [];

  /** `speakers`: with `speaker_labels=true`, the session's speaker labelling (fed its audio by the session). */
  constructor(
    private readonly session: LiveSession,
    private readonly info: AssemblyAISessionInfo,
    readonly style: { formatTurns: boolean; legacyDouble: boolean },
    private readonly speakers?: SpeakerLabels,
  ) {}

  /** A partial hypothesis: words stable across two hypotheses count as final. */
  partial(text: string, audioEnd: number): void {
    const words = text.split(/\s+/).filter(Boolean);
    if (words.length === 0 || words.join(' ') === this.hyp.join(' ')) return;
    this.prevHyp = this.hyp;
    this.hyp = words;
    let stable = 0;
    while (stable < words.length - 1 && stable < this.prevHyp.length && words[stable] === this.prevHyp[stable]) stable += 1;
    const from = this.floor;
    const step = Math.max(0.05, (audioEnd - from) / words.length);
    const tail: TurnWord[] = words.map((w, i) => ({
      text: w,
      start: ms(from + i * step),
      end: ms(from + (i + 1) * step),
      confidence: 0.5,
      word_is_final: i < stable,
    }));
    const all = [...this.finalWords(false), ...tail];
    this.send(all, false, false, '', 0.01, this.provisional(all));
  }

  /** Words the recogniser finalised: they join the open turn, all final. */
  final(u: RecognisedUtterance): void {
    if (u.words.length === 0) return;
    this.words.push(...u.words);
    this.floor = Math.max(this.floor, u.end);
    this.hyp = [];
    const words = this.finalWords(false);
    this.send(words, false, false, '', 0.05, this.provisional(words));
  }

  /** End the open turn (nothing when it has no final words); `at`: stream seconds of the endpoint. */
  end(at?: number): void {
    if (at !== undefined) this.floor = Math.max(this.floor, at);
    if (this.words.length === 0) return;
    const legacy = this.style.legacyDouble;
    // The turn's speaker, decided once (both messages of the legacy pair carry it).
    const start = this.words[0]!.start;
    const end = this.words[this.words.length - 1]!.end;
    const label = this.speakers?.label(start, end, true);
    if (label !== undefined) this.ended.push({ order: this.order, start, end, label });
    if (!this.style.formatTurns || legacy) {
      const plain = this.finalWords(false);
      this.send(plain, true, false, plain.map((w) => w.text).join(' '), EOT_CONFIDENCE, label);
    }
    if (this.style.formatTurns) {
      const formatted = this.finalWords(true);
      this.send(formatted, true, true, legacy ? '' : formatted.map((w) => w.text).join(' '), EOT_CONFIDENCE, label);
    }
    this.order += 1;
    this.words = [];
    this.hyp = [];
    this.prevHyp = [];
  }

  /**
   * §3.9 with `speaker_labels`: the SpeakerRevision sent just before Termination. Its fields are
   * UNCONFIRMED (providers.md §3.4); the shape here — `revisions: [{turn_order, speaker_label}]`, the
   * ended turns whose label the profiles as they stand now would change — follows one third-party
   * client's types. Sent even when empty, so clients always meet one. Nothing without speaker labels.
   */
  revise(): void {
    if (!this.speakers) return;
    const revisions = this.ended
      .map((t) => ({ turn_order: t.order, speaker_label: this.speakers!.relabel(t.start, t.end), was: t.label }))
      .filter((r) => r.speaker_label !== r.was)
      .map(({ turn_order, speaker_label }) => ({ turn_order, speaker_label }));
    if (this.session.send({ type: 'SpeakerRevision', revisions }, 'SpeakerRevision')) this.info.speakerRevisionsSent += 1;
  }

  /** A partial Turn's label: what its words so far would get (nothing joins a speaker's profile). */
  private provisional(words: TurnWord[]): string | undefined {
    if (!this.speakers) return undefined;
    if (words.length === 0) return UNKNOWN_SPEAKER;
    return this.speakers.label(words[0]!.start / 1000, words[words.length - 1]!.end / 1000, false);
  }

  private finalWords(formatted: boolean): TurnWord[] {
    const texts = formatted ? punctuate(this.words.map((w) => w.word)) : this.words.map((w) => w.word);
    return this.words.map((w, i) => ({ text: texts[i]!, start: ms(w.start), end: ms(w.end), confidence: w.confidence, word_is_final: true }));
  }

  private send(words: TurnWord[], endOfTurn: boolean, formatted: boolean, utterance: string, confidence: number, speakerLabel: string | undefined): void {
    const sent = this.session.send(
      {
        type: 'Turn',
        turn_order: this.order,
        turn_is_formatted: formatted,
        end_of_turn: endOfTurn,
        transcript: words.filter((w) => w.word_is_final).map((w) => w.text).join(' '),
        utterance,
        end_of_turn_confidence: confidence,
        words,
        ...(speakerLabel !== undefined ? { speaker_label: speakerLabel } : {}),
      },
      'Turn',
    );
    if (!sent) return;
    this.info.turnsSent += 1;
    if (endOfTurn) this.info.endOfTurnsSent += 1;
  }
}
