/**
 * The live session's recogniser with endpointing like the service's (providers.md §2.2, §2.5;
 * Deepgram's "Endpointing" and "Configure Endpointing and Interim Results" pages): the PCM the
 * recogniser hears also goes to an energy Endpointer with `pauseMs` = the `endpointing` parameter
 * (default 10 ms; `endpointing=false`: no pause endpoints) and `maxSegmentMs` (4 s). At each endpoint
 * the recogniser is flushed, so everything heard so far becomes final: a `pause` endpoint's finals
 * end with `speech_final: true`; a `max` endpoint (continuous speech) gives `is_final: true,
 * speech_final: false`, as the service finalises a long utterance every few seconds.
 *
 * Deviation: the Endpointer works on 10 ms energy frames, so a pause shorter than its MIN_PAUSE_MS
 * (150 ms) cannot be told from the gaps between words: `endpointing` below 150 acts as 150.
 */
import { Endpointer, type Endpoint } from '../../kit';
import { FlushableRecogniser, round3 } from '../../kit';
import { PCM_BPS } from '../options';
import { endpointingMs, isTrue } from '../query';
import { LiveOutput, type BoundaryKind, type OutputContext } from './output';

/** 100 ms: a pause endpoint's pause is at least MIN_PAUSE_MS (150 ms), so the cut falls inside it. */
const LEAD_IN_BYTES = 3200;
/** 30 ms: a max endpoint ends a word gap of at least 60 ms (the Endpointer's gapMs). */
const MAX_CUT_BACK_BYTES = 960;

export interface TranscriberOptions {
  /** Partial hypothesis period, ms of audio. */
  interimEveryMs: number;
  maxSegmentMs: number;
  /** The recogniser failed. */
  onError(): void;
}

export class LiveTranscriber {
  private recogniser: FlushableRecogniser | undefined;
  private readonly endpointer: Endpointer;
  private readonly output: LiveOutput;
  private readonly partials: boolean;
  /** Bytes fed to the transcriber (the recogniser's plus the lead-in still held back). */
  private heardBytes = 0;
  private readonly delayed: Buffer[] = [];
  private delayedBytes = 0;
  /** A Finalize flush is under way (a second one is not started). */
  private flushing = false;

  constructor(
    ctx: Omit<OutputContext, 'fedSeconds'>,
    private readonly opts: TranscriberOptions,
  ) {
    this.output = new LiveOutput({ ...ctx, fedSeconds: () => this.fedSeconds });
    const pause = endpointingMs(ctx.q);
    this.endpointer = new Endpointer({ pauseMs: pause ?? Number.POSITIVE_INFINITY, maxSegmentMs: opts.maxSegmentMs });
    this.partials = isTrue(ctx.q, 'interim_results') || isTrue(ctx.q, 'vad_events');
  }

  /** Seconds of audio fed to the transcriber. */
  get fedSeconds(): number {
    return this.heardBytes / PCM_BPS;
  }

  /**
   * PCM for the recogniser (already paced). The recogniser hears it 100 ms (LEAD_IN_BYTES) late, so
   * that an endpoint (decided at the end of a pause) flushes it inside the pause: the next segment
   * then starts with silence rather than on the next word's first sound (a recogniser that starts
   * cold on a word mishears it: "project" came out as "object"). Results come 100 ms later for it.
   */
  feed(pcm: Buffer): void {
    const base = this.heardBytes;
    let off = 0;
    for (const e of this.endpointer.push(pcm)) {
      let cut = Math.round(e.atSeconds * PCM_BPS) - base;
      cut = Math.min(pcm.length, Math.max(off, cut - (cut % 2)));
      this.hear(pcm.subarray(off, cut));
      off = cut;
      this.endpoint(e);
    }
    this.hear(pcm.subarray(off));
  }

  /**
   * `Finalize`: everything heard so far becomes final (`from_finalize: true`); audio that gave no
   * words is closed with an empty final. Nothing when nothing was heard.
   */
  async finalize(): Promise<void> {
    if (this.flushing) return;
    this.writeDelayed(0);
    const r = this.recogniser;
    if (!r) return;
    this.flushing = true;
    try {
      const settle = this.output.boundary(round3(r.audioSeconds), 'finalize');
      await r.flush();
      settle();
    } finally {
      this.flushing = false;
    }
    this.output.emptyFinal('finalize');
  }

  /**
   * End of the stream (CloseStream: `finalize`; the idle close: `idle`): the last finals are sent,
   * then (CloseStream) an empty final closes the remaining range.
   */
  async finish(kind: Extract<BoundaryKind, 'finalize' | 'idle'>): Promise<void> {
    this.writeDelayed(0);
    const r = this.recogniser;
    if (!r) return;
    const settle = this.output.boundary(round3(r.audioSeconds), kind);
    await r.end();
    settle();
    if (kind === 'finalize') this.output.emptyFinal(kind);
  }

  kill(): void {
    this.recogniser?.kill();
  }

  /** Audio in: the UtteranceEnd clock sees it now, the recogniser LEAD_IN_BYTES later. */
  private hear(pcm: Buffer): void {
    if (!pcm.length) return;
    this.heardBytes += pcm.length;
    this.delayed.push(pcm);
    this.delayedBytes += pcm.length;
    this.output.onAudio(pcm, this.heardBytes / PCM_BPS);
    this.writeDelayed(LEAD_IN_BYTES);
  }

  /** Write what is older than `keepBytes` (everything with 0) to the recogniser. */
  private writeDelayed(keepBytes: number): void {
    while (this.delayedBytes > keepBytes) {
      const head = this.delayed[0]!;
      const take = Math.min(head.length, this.delayedBytes - keepBytes);
      if (take === head.length) this.delayed.shift();
      else this.delayed[0] = head.subarray(take);
      this.delayedBytes -= take;
      this.ensureRecogniser().write(take === head.length ? head : head.subarray(0, take));
    }
  }

  private endpoint(e: Endpoint): void {
    const r = this.recogniser;
    if (!r) return;
    // A max endpoint's gap may be shorter than the lead-in: cut in the middle of the gap.
    if (e.kind === 'max') this.writeDelayed(MAX_CUT_BACK_BYTES);
    const settle = this.output.boundary(round3(r.audioSeconds), e.kind);
    r.flush().then(settle, settle);
  }

  private ensureRecogniser(): FlushableRecogniser {
    this.recogniser ??= new FlushableRecogniser({
      partialMs: this.partials ? this.opts.interimEveryMs : 0,
      onPartial: (t, audioEnd) => this.output.onPartial(t, audioEnd),
      onFinal: (u) => this.output.onFinal(u),
      onError: () => this.opts.onError(),
    });
    return this.recogniser;
  }
}
