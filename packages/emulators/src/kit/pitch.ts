/**
 * Speaker labels for emulated diarization, from voice pitch. Real diarization needs a speaker model;
 * the emulator has none, but its test speech is synthesised with flite voices whose pitch differs
 * (kal16, rms, awb: low male voices; slt: a higher female one), so the median fundamental
 * frequency of each utterance tells them apart. Pitch by normalised autocorrelation over 40 ms
 * frames of 16 kHz s16le PCM (60–400 Hz); utterances clustered on log-pitch where neighbours differ
 * by more than `SPLIT_RATIO`; speaker ids 0, 1, … in order of first appearance, as Deepgram's.
 */

const RATE = 16_000;
const FRAME = 640; // 40 ms
const MIN_LAG = Math.floor(RATE / 400);
const MAX_LAG = Math.ceil(RATE / 60);
/** Frames quieter than this RMS (of 32 768) are not voiced. */
const MIN_RMS = 300;
/** Normalised autocorrelation a voiced frame reaches at its period. */
const MIN_CORRELATION = 0.5;
/** Two utterances whose median pitches differ by more than this ratio are different speakers. */
export const SPLIT_RATIO = 1.25;

/** The pitch of 16 kHz mono s16le PCM, frame by frame (0 = unvoiced), fed in chunks of any size. */
export class PitchTrack {
  private readonly f0: number[] = [];
  private rest: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): void {
    const buf = this.rest.length ? Buffer.concat([this.rest, chunk]) : chunk;
    const frameBytes = FRAME * 2;
    let off = 0;
    for (; off + frameBytes <= buf.length; off += frameBytes) this.f0.push(framePitch(buf, off));
    this.rest = Buffer.from(buf.subarray(off));
  }

  /** Median pitch (Hz) of the voiced frames between two times (s), or 0 if none is voiced. */
  median(start: number, end: number): number {
    const from = Math.max(0, Math.floor((start * RATE) / FRAME));
    const to = Math.min(this.f0.length, Math.ceil((end * RATE) / FRAME));
    const voiced = this.f0.slice(from, to).filter((x) => x > 0).sort((a, b) => a - b);
    return voiced.length ? voiced[Math.floor(voiced.length / 2)]! : 0;
  }
}

function framePitch(buf: Buffer, off: number): number {
  const x = new Float64Array(FRAME);
  let energy = 0;
  for (let i = 0; i < FRAME; i++) {
    const v = buf.readInt16LE(off + 2 * i);
    x[i] = v;
    energy += v * v;
  }
  if (Math.sqrt(energy / FRAME) < MIN_RMS) return 0;
  const r = new Float64Array(MAX_LAG + 1);
  let best = 0;
  for (let lag = MIN_LAG; lag <= MAX_LAG && lag < FRAME; lag++) {
    let xy = 0;
    let xx = 0;
    let yy = 0;
    for (let i = 0; i + lag < FRAME; i++) {
      xy += x[i]! * x[i + lag]!;
      xx += x[i]! * x[i]!;
      yy += x[i + lag]! * x[i + lag]!;
    }
    r[lag] = xx && yy ? xy / Math.sqrt(xx * yy) : 0;
    if (r[lag]! > best) best = r[lag]!;
  }
  if (best < MIN_CORRELATION) return 0;
  // The shortest lag close to the best one: the period, not a multiple of it (octave errors).
  for (let lag = MIN_LAG; lag <= MAX_LAG && lag < FRAME; lag++) if (r[lag]! >= 0.9 * best) return RATE / lag;
  return 0;
}

/**
 * Speaker ids for utterances (in time order) from their median pitches: sorted on log-pitch and cut
 * where neighbours differ by more than SPLIT_RATIO; an utterance with no voiced frame keeps the
 * speaker before it. Ids in order of first appearance.
 */
export function speakersByPitch(pitches: number[]): number[] {
  const voiced = pitches.map((p, i) => ({ p, i })).filter((x) => x.p > 0).sort((a, b) => a.p - b.p);
  const cluster = new Map<number, number>();
  let c = 0;
  voiced.forEach((x, k) => {
    if (k > 0 && x.p / voiced[k - 1]!.p > SPLIT_RATIO) c += 1;
    cluster.set(x.i, c);
  });
  const ids = new Map<number, number>();
  let last = 0;
  return pitches.map((_, i) => {
    const k = cluster.get(i);
    if (k === undefined) return last;
    if (!ids.has(k)) ids.set(k, ids.size);
    last = ids.get(k)!;
    return last;
  });
}
