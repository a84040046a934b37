/**
 * Endpointing like the hosted services: where an utterance ends in a stream of 16 kHz mono s16le PCM.
 * Each 10 ms frame is speech or silence by its energy (RMS); after speech,
 *   - silence of at least `pauseMs` is a `pause` endpoint (Deepgram `speech_final`, an AssemblyAI end
 *     of turn): the speaker stopped;
 *   - continuous speech of `maxSegmentMs` ends at the next gap between words (`gapMs` of silence) as a
 *     `max` endpoint (Deepgram `is_final` without `speech_final`), or at 1.5 × `maxSegmentMs` anyway:
 *     the services finalise every few seconds of speech that has no pause long enough.
 * The recogniser's owner flushes it at each endpoint, so everything heard so far becomes final.
 * Deviation from the services: a frame is 10 ms and the detector is energy based, so pauses shorter than
 * `MIN_PAUSE_MS` cannot be told from the gaps between words; a smaller `pauseMs` acts as `MIN_PAUSE_MS`.
 */
export const MIN_PAUSE_MS = 150;
const FRAME_SAMPLES = 160; // 10 ms at 16 kHz
const FRAME_MS = 10;

export interface EndpointingOptions {
  /** Silence after speech at least this long ends the utterance (floor MIN_PAUSE_MS). */
  pauseMs: number;
  /** Continuous speech at most about this long without an endpoint (default 4000 ms). */
  maxSegmentMs?: number;
  /** A gap between words long enough to end a `max` segment at (default 60 ms). */
  gapMs?: number;
  /** A frame whose RMS (16-bit sample units) is below this is silence (default 300, about -40 dBFS). */
  silenceRms?: number;
}

export interface Endpoint {
  kind: 'pause' | 'max';
  /** Stream time of the endpoint, seconds (the end of the frame that decided it). */
  atSeconds: number;
}

export class Endpointer {
  private readonly pauseFrames: number;
  private readonly maxFrames: number;
  private readonly forceFrames: number;
  private readonly gapFrames: number;
  private readonly silence2: number;
  private carry: Buffer = Buffer.alloc(0);
  private frame = 0;
  private hadSpeech = false;
  private segmentStart = 0;
  private silentRun = 0;

  constructor(opts: EndpointingOptions) {
    this.pauseFrames = Math.ceil(Math.max(MIN_PAUSE_MS, opts.pauseMs) / FRAME_MS);
    this.maxFrames = Math.ceil((opts.maxSegmentMs ?? 4000) / FRAME_MS);
    this.forceFrames = Math.ceil(this.maxFrames * 1.5);
    this.gapFrames = Math.max(1, Math.ceil((opts.gapMs ?? 60) / FRAME_MS));
    const rms = opts.silenceRms ?? 300;
    this.silence2 = rms * rms;
  }

  /** Feed PCM as it arrives; returns the endpoints it completed, in order. */
  push(pcm: Buffer): Endpoint[] {
    const out: Endpoint[] = [];
    let buf = this.carry.length ? Buffer.concat([this.carry, pcm]) : pcm;
    const whole = buf.length - (buf.length % (FRAME_SAMPLES * 2));
    for (let off = 0; off < whole; off += FRAME_SAMPLES * 2) {
      let sum = 0;
      for (let i = 0; i < FRAME_SAMPLES; i++) {
        const s = buf.readInt16LE(off + i * 2);
        sum += s * s;
      }
      const e = this.step(sum / FRAME_SAMPLES < this.silence2);
      if (e) out.push(e);
    }
    this.carry = whole < buf.length ? Buffer.from(buf.subarray(whole)) : Buffer.alloc(0);
    buf = Buffer.alloc(0);
    return out;
  }

  private step(silent: boolean): Endpoint | undefined {
    const f = this.frame++;
    if (!silent) {
      if (!this.hadSpeech) {
        this.hadSpeech = true;
        this.segmentStart = f;
      }
      this.silentRun = 0;
    } else {
      this.silentRun += 1;
    }
    if (!this.hadSpeech) return undefined;
    const at = ((f + 1) * FRAME_MS) / 1000;
    const length = f + 1 - this.segmentStart;
    let kind: Endpoint['kind'] | undefined;
    if (this.silentRun >= this.pauseFrames) kind = 'pause';
    else if ((length >= this.maxFrames && this.silentRun >= this.gapFrames) || length >= this.forceFrames) kind = 'max';
    if (!kind) return undefined;
    this.hadSpeech = false;
    return { kind, atSeconds: at };
  }
}
