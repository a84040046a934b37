/**
 * Streaming speaker labels (providers.md §3.2, §3.4): with `speaker_labels=true` every Turn carries a
 * `speaker_label` — "A", "B", … in order of first appearance, "UNKNOWN" for a turn too short to tell
 * (under about a second) — and `max_speakers` caps how many letters a session uses.
 *
 * The service builds speaker profiles from voice embeddings as the session goes; the emulator has the
 * kit's pitch track (kit/pitch.ts), which tells its synthesised voices apart. Labels are decided online,
 * as a stream must: a turn's median pitch joins the speaker whose mean (log) pitch is within
 * SPLIT_RATIO of it, the closest one if several; else it is a new speaker, unless `max_speakers` are
 * taken, then the closest one (the service's docs: extra speakers are merged into the closest existing
 * label). A turn with no voiced frame is UNKNOWN too. Partial Turns get the label their words so far
 * would get, without joining a profile; only an ended turn does.
 */
import { PitchTrack, SPLIT_RATIO } from '../kit';
import { MAX_SPEAKERS } from './handshake';

export const UNKNOWN_SPEAKER = 'UNKNOWN';
/** A turn shorter than this (first word start → last word end) is UNKNOWN (§3.2: "< ~1 s turns"). */
export const MIN_LABELLED_SECONDS = 1;

const LOG_SPLIT = Math.log(SPLIT_RATIO);

interface Profile {
  /** Sum and count of the log median pitches of the turns it was given. */
  logSum: number;
  turns: number;
}

const letter = (i: number): string => String.fromCharCode(65 + i);

export class SpeakerLabels {
  private readonly pitch = new PitchTrack();
  private readonly profiles: Profile[] = [];

  constructor(private readonly maxSpeakers: number = MAX_SPEAKERS) {}

  /** The session's audio (16 kHz s16le), in stream order from its start. */
  push(pcm: Buffer): void {
    this.pitch.push(pcm);
  }

  /** Speakers labelled so far. */
  get count(): number {
    return this.profiles.length;
  }

  /**
   * The label of a turn whose words span `start`..`end` (stream seconds). `commit` (an ended turn):
   * the turn joins its speaker's profile, a new speaker's is created.
   */
  label(start: number, end: number, commit: boolean): string {
    const f0 = this.f0(start, end);
    if (f0 === undefined) return UNKNOWN_SPEAKER;
    const i = this.match(f0, this.profiles.length < this.maxSpeakers);
    if (commit) {
      if (i === this.profiles.length) this.profiles.push({ logSum: 0, turns: 0 });
      this.profiles[i]!.logSum += f0;
      this.profiles[i]!.turns += 1;
    }
    return letter(i);
  }

  /** The label an ended turn gets from the profiles as they stand now (no new speaker): for SpeakerRevision. */
  relabel(start: number, end: number): string {
    const f0 = this.f0(start, end);
    return f0 === undefined || this.profiles.length === 0 ? UNKNOWN_SPEAKER : letter(this.match(f0, false));
  }

  /** Log median pitch of the span, or undefined when it is too short or unvoiced. */
  private f0(start: number, end: number): number | undefined {
    if (end - start < MIN_LABELLED_SECONDS) return undefined;
    const hz = this.pitch.median(start, end);
    return hz > 0 ? Math.log(hz) : undefined;
  }

  /** The closest profile within SPLIT_RATIO; else a new one's index when `open`, else the closest. */
  private match(logF0: number, open: boolean): number {
    let best = -1;
    let bestDistance = Infinity;
    this.profiles.forEach((p, i) => {
      const d = Math.abs(logF0 - p.logSum / p.turns);
      if (d < bestDistance) {
        best = i;
        bestDistance = d;
      }
    });
    if (best >= 0 && bestDistance <= LOG_SPLIT) return best;
    return open || best < 0 ? this.profiles.length : best;
  }
}
