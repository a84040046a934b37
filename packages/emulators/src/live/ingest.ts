/**
 * The audio path of a streaming session, shared by the streaming emulators: the client's frames are
 * converted to 16 kHz s16le (PcmConverter), cut into utterances by the kit's energy Endpointer (a pause
 * of `pauseMs`, or a word gap after `maxSegmentMs` of continuous speech), and fed to a FlushableRecogniser
 * that is flushed at every endpoint, so everything heard up to it becomes final — what the hosted
 * services do, instead of waiting for the recogniser's own long-silence utterance ends.
 *
 * Ordering: after a flush, the recogniser's next process is held back until the previous one delivered
 * its finals; results of the audio after a cut are recognised by their stream time (a final starting at
 * or after the cut, a partial ending after it). A cut's callback runs exactly between the two: after the
 * last final of the audio before it and before the first result of the audio after it.
 */
import { Endpointer, type Endpoint } from '../kit';
import { FlushableRecogniser, PcmConverter, type RecognisedUtterance } from '../kit';

const BYTES_PER_SECOND = 32_000; // 16 kHz s16le
/** Tolerance when comparing result times (rounded to ms) with a cut's time. */
const EPSILON = 0.002;

export interface IngestOptions {
  sampleRate: number;
  encoding: 'pcm_s16le' | 'pcm_mulaw';
  /** Recogniser partial period, ms of audio. */
  partialMs: number;
  /** Silence after speech that ends an utterance (the Endpointer's floor MIN_PAUSE_MS applies). */
  pauseMs: number;
  /** Continuous speech is cut at the next word gap after about this long (Endpointer default 4000 ms). */
  maxSegmentMs?: number;
  onPartial(text: string, audioEnd: number): void;
  onFinal(u: RecognisedUtterance): void;
  /** An endpoint the Endpointer found, at stream time `atSeconds`, in stream order (see above). */
  onEndpoint(kind: Endpoint['kind'], atSeconds: number): void;
  onError(err: Error): void;
  /** Every piece of the converted audio (16 kHz s16le), in stream order, before it is endpointed (e.g. a pitch track). */
  onPcm?(pcm: Buffer): void;
}

interface Cut {
  at: number;
  then: () => void;
}

export class LiveIngest {
  private readonly recogniser: FlushableRecogniser;
  private readonly converter: PcmConverter;
  private endpointer: Endpointer;
  private pauseMs: number;
  /** Bytes written to the recogniser; `origin`: when the current Endpointer started counting. */
  private bytes = 0;
  private origin = 0;
  private readonly cuts: Cut[] = [];

  constructor(private readonly opts: IngestOptions) {
    this.converter = new PcmConverter(opts.sampleRate, opts.encoding);
    this.pauseMs = opts.pauseMs;
    this.endpointer = this.renew();
    this.recogniser = new FlushableRecogniser({
      partialMs: opts.partialMs,
      onPartial: (text, audioEnd) => {
        this.pass((c) => audioEnd > c.at + EPSILON / 4);
        opts.onPartial(text, audioEnd);
      },
      onFinal: (u) => {
        this.pass((c) => u.start >= c.at - EPSILON);
        opts.onFinal(u);
      },
      onError: (err) => opts.onError(err),
    });
  }

  /** Seconds of audio received (16 kHz after conversion). */
  get audioSeconds(): number {
    return this.bytes / BYTES_PER_SECOND;
  }

  /** A client frame: converted, endpointed, recognised; the recogniser is flushed at each endpoint. */
  write(frame: Buffer): void {
    const pcm = this.converter.convert(frame);
    if (pcm.length) this.opts.onPcm?.(pcm);
    const chunkStart = this.bytes;
    let from = 0;
    for (const e of this.endpointer.push(pcm)) {
      const atBytes = this.origin + Math.round(e.atSeconds * BYTES_PER_SECOND);
      const to = Math.min(pcm.length, Math.max(from, atBytes - chunkStart));
      this.feed(pcm.subarray(from, to));
      from = to;
      const at = this.audioSeconds;
      this.flushAt(() => this.opts.onEndpoint(e.kind, at));
    }
    this.feed(pcm.subarray(from));
  }

  /**
   * End the utterance here (ForceEndpoint, a checkpoint): flush, and run `then` in stream order. The
   * Endpointer starts afresh: the next endpoint needs speech first. Resolves after `then` ran.
   */
  cut(then: () => void = () => {}): Promise<void> {
    this.endpointer = this.renew();
    return this.flushAt(then);
  }

  /** New endpointing settings (e.g. AssemblyAI's UpdateConfiguration), from the audio to come. */
  configure(pauseMs: number): void {
    this.pauseMs = pauseMs;
    this.endpointer = this.renew();
  }

  /** The end of the stream: resolves after the last finals and every pending cut's callback. */
  async end(): Promise<void> {
    await this.recogniser.end();
    this.pass(() => true);
  }

  /** Drop the utterance in progress (nothing pending becomes final) and continue afresh. */
  reset(): void {
    this.recogniser.reset();
    this.endpointer = this.renew();
  }

  kill(): void {
    this.cuts.length = 0;
    this.recogniser.kill();
  }

  private feed(pcm: Buffer): void {
    if (pcm.length === 0) return;
    this.bytes += pcm.length;
    this.recogniser.write(pcm);
  }

  private renew(): Endpointer {
    this.origin = this.bytes;
    return new Endpointer({ pauseMs: this.pauseMs, ...(this.opts.maxSegmentMs !== undefined ? { maxSegmentMs: this.opts.maxSegmentMs } : {}) });
  }

  private flushAt(then: () => void): Promise<void> {
    const cut: Cut = { at: this.audioSeconds, then };
    this.cuts.push(cut);
    return this.recogniser.flush().then(() => this.pass((c) => c === cut, true));
  }

  /** Run the callbacks of the pending cuts, oldest first, while `passed` (`through`: up to and including the match). */
  private pass(passed: (c: Cut) => boolean, through = false): void {
    if (through && !this.cuts.some(passed)) return;
    while (this.cuts.length) {
      const c = this.cuts[0]!;
      if (!through && !passed(c)) return;
      this.cuts.shift();
      c.then();
      if (through && passed(c)) return;
    }
  }
}
