/**
 * UtteranceEnd (providers.md §2.4; Deepgram's "Utterance End" page): with `utterance_end_ms` and
 * `interim_results=true`, once the audio has run `utterance_end_ms` past the end of the last
 * finalised word with no new word in between, send `{"type":"UtteranceEnd","last_word_end"}`.
 *
 * "No new word in between" is known from the words' times once the recogniser has reported them, but
 * the recogniser reports an utterance's first words only with its next interim (every second of
 * audio), later than the gap rule must decide. So the emulator also watches the audio it feeds: a
 * speech onset (≥ 30 ms of speech energy after ≥ 50 ms of silence) after the last word's end counts
 * as a new word, and so does any interim or final with words sent after it.
 * Deviation: an onset that is noise rather than a word also holds the UtteranceEnd back.
 */
import { PCM_BPS } from '../options';

const FRAME_BYTES = 320; // 10 ms at 16 kHz s16le
const SPEECH_RMS = 300; // the Endpointer's default silence threshold
const ONSET_FRAMES = 3;
const QUIET_FRAMES = 5;

/**
 * Onsets are kept from the last finalised word on (the only ones a gap check asks about), however
 * far the recogniser lags the audio: a count cap (64 once) dropped the onsets a lagging recogniser's
 * next final still had to see, and a loaded machine then sent an UtteranceEnd inside continuous
 * speech. This cap only bounds a stream whose recogniser never finalises anything.
 */
const KEEP_ONSETS = 100_000;

/** The speech onsets in the audio fed so far (stream seconds, the latest few). */
export class SpeechOnsets {
  private carry: Buffer = Buffer.alloc(0);
  private frame = 0;
  private quiet = QUIET_FRAMES; // the stream starts as silence
  private speech = 0;
  readonly recent: number[] = [];

  push(pcm: Buffer): void {
    const buf = this.carry.length ? Buffer.concat([this.carry, pcm]) : pcm;
    const whole = buf.length - (buf.length % FRAME_BYTES);
    for (let off = 0; off < whole; off += FRAME_BYTES) {
      let sum = 0;
      for (let i = 0; i < FRAME_BYTES; i += 2) {
        const s = buf.readInt16LE(off + i);
        sum += s * s;
      }
      this.step(sum / (FRAME_BYTES / 2) >= SPEECH_RMS * SPEECH_RMS);
    }
    this.carry = whole < buf.length ? Buffer.from(buf.subarray(whole)) : Buffer.alloc(0);
  }

  private step(loud: boolean): void {
    const f = this.frame++;
    if (!loud) {
      if (++this.quiet >= QUIET_FRAMES) this.speech = 0;
      return;
    }
    // A dip shorter than QUIET_FRAMES inside speech did not reset `speech`: no new onset.
    this.quiet = 0;
    this.speech += 1;
    if (this.speech !== ONSET_FRAMES) return;
    this.recent.push(((f + 1 - ONSET_FRAMES) * FRAME_BYTES) / PCM_BPS);
    if (this.recent.length > KEEP_ONSETS) this.recent.shift();
  }

  /** Onsets at or before `t` are not needed any more (a final's last word ends at `t`). */
  forgetUpTo(t: number): void {
    let n = 0;
    while (n < this.recent.length && this.recent[n]! <= t) n++;
    if (n) this.recent.splice(0, n);
  }

  /** Whether speech began in the open interval (from, to). */
  anyBetween(from: number, to: number): boolean {
    return this.recent.some((t) => t > from && t < to);
  }
}

export class UtteranceEndRule {
  private lastWordEnd: number | undefined;
  readonly onsets = new SpeechOnsets();

  constructor(
    private readonly gapMs: number,
    private readonly send: (lastWordEnd: number) => void,
  ) {}

  /** A final with words was sent: its last word starts the gap clock. */
  onFinalWords(lastWordEnd: number, fedSeconds: number): void {
    this.lastWordEnd = lastWordEnd;
    this.onsets.forgetUpTo(lastWordEnd);
    this.check(fedSeconds);
  }

  /** An interim with words was sent after the last final: a word is under way, no gap. */
  onInterimWords(): void {
    this.lastWordEnd = undefined;
  }

  /** PCM fed to the recogniser (16 kHz s16le); `fedSeconds` includes it. */
  onAudio(pcm: Buffer, fedSeconds: number): void {
    this.onsets.push(pcm);
    this.check(fedSeconds);
  }

  private check(fedSeconds: number): void {
    const end = this.lastWordEnd;
    if (end === undefined) return;
    const deadline = end + this.gapMs / 1000;
    if (this.onsets.anyBetween(end, Math.min(deadline, fedSeconds + 1e-9))) {
      this.lastWordEnd = undefined; // speech resumed within the gap: the next final restarts the clock
      return;
    }
    if (fedSeconds + 1e-9 < deadline) return;
    this.lastWordEnd = undefined;
    this.send(end);
  }
}
