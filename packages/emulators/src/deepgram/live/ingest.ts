/**
 * Live audio in: the client's frames decoded to 16 kHz PCM (in-process for raw linear16/mulaw, through
 * ffmpeg for containers and headered encodings), and the pacing gate that lets PCM reach the
 * recogniser at most `maxRealtimeFactor` × real time plus a `burstAllowanceMs` head start (§7.3).
 */
import { performance } from 'node:perf_hooks';
import { PassThrough } from 'node:stream';
import { decodeToPcm } from '@scribe-fleet/core/adapters/s3/ffmpeg-decoder';
import { closeReason, PcmConverter } from '../../kit';
import { PCM_BPS, type ResolvedDeepgramOptions } from '../options';
import { SNIFFED_ENCODINGS } from '../query';

export interface Ingest {
  write(frame: Buffer): void;
  end(): Promise<void>;
  destroy(): void;
  /** Bytes per second of the client's audio when known (raw encodings). */
  byteRate?: number;
}

export interface IngestSink {
  onPcm(pcm: Buffer): void;
  /** Seconds of decoded container audio (the rate check of containers runs on decoded audio). */
  onDecodedSeconds(seconds: number): void;
  /** The audio cannot be decoded: close 1008 DATA-0000 with this reason. */
  onUndecodable(reason: string): void;
}

/** The decoder for the session's `encoding`; undefined (after `onUndecodable`) when there is none here. */
export function openIngest(q: URLSearchParams, sink: IngestSink): Ingest | undefined {
  const encoding = q.get('encoding');
  const sampleRate = Number(q.get('sample_rate') ?? 16000);
  const channels = Number(q.get('channels') ?? 1);
  if ((encoding === 'linear16' || encoding === 'mulaw') && channels === 1) {
    const conv = new PcmConverter(sampleRate, encoding === 'mulaw' ? 'pcm_mulaw' : 'pcm_s16le');
    return {
      byteRate: sampleRate * (encoding === 'mulaw' ? 1 : 2),
      write: (frame) => sink.onPcm(conv.convert(frame)),
      end: async () => undefined,
      destroy: () => undefined,
    };
  }
  if (encoding === null || SNIFFED_ENCODINGS.includes(encoding)) return containerIngest(sink);
  sink.onUndecodable(closeReason(`DATA-0000: could not decode the audio (the emulator cannot decode encoding=${encoding}${channels > 1 ? ` with ${channels} channels` : ''})`));
  return undefined;
}

function containerIngest(sink: IngestSink): Ingest {
  const input = new PassThrough();
  const abort = new AbortController();
  const done = (async () => {
    for await (const pcm of decodeToPcm(input, { signal: abort.signal })) {
      sink.onPcm(pcm);
      sink.onDecodedSeconds(pcm.length / PCM_BPS);
    }
  })().catch(() => {
    if (!abort.signal.aborted) sink.onUndecodable('DATA-0000: could not decode the audio (corrupt or unsupported data)');
  });
  return {
    write: (frame) => input.write(frame),
    end: async () => {
      input.end();
      await done;
    },
    destroy: () => {
      abort.abort();
      input.destroy();
    },
  };
}

/** PCM reaches `feed` at most maxRealtimeFactor × real time since the first audio (+ burst); the rest waits. */
export class PacingGate {
  private readonly queue: Buffer[] = [];
  private drainWaiters: Array<() => void> = [];
  private pump: NodeJS.Timeout | undefined;
  private fedBytes = 0;
  private stopped = false;

  constructor(
    private readonly options: ResolvedDeepgramOptions,
    /** performance.now() of the first audio frame. */
    private readonly firstAudioAt: () => number | undefined,
    private readonly feed: (pcm: Buffer) => void,
  ) {}

  push(pcm: Buffer): void {
    if (!pcm.length || this.stopped) return;
    this.queue.push(pcm);
    this.pumpQueue();
  }

  /** Resolves once everything pushed so far was fed (or the gate stopped). */
  drained(): Promise<void> {
    if (!this.queue.length) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Feed everything waiting now, past the ceiling (the session is ending). */
  release(): void {
    clearTimeout(this.pump);
    for (let pcm = this.queue.shift(); pcm && !this.stopped; pcm = this.queue.shift()) {
      this.fedBytes += pcm.length;
      this.feed(pcm);
    }
    for (const w of this.drainWaiters.splice(0)) w();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.pump);
    this.queue.length = 0;
    for (const w of this.drainWaiters.splice(0)) w();
  }

  private allowedBytes(): number {
    const elapsed = performance.now() - (this.firstAudioAt() ?? performance.now());
    return Math.floor(((elapsed * this.options.maxRealtimeFactor + this.options.burstAllowanceMs) * PCM_BPS) / 1000);
  }

  private pumpQueue(): void {
    if (this.stopped) return;
    clearTimeout(this.pump);
    let budget = this.allowedBytes() - this.fedBytes;
    while (this.queue.length && budget > 0 && !this.stopped) {
      const head = this.queue[0]!;
      const take = head.length <= budget ? head.length : budget - (budget % 2);
      if (take <= 0) break;
      if (take === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(take);
      this.fedBytes += take;
      this.feed(take === head.length ? head : head.subarray(0, take));
      budget -= take;
    }
    if (this.stopped) return;
    if (this.queue.length) this.pump = setTimeout(() => this.pumpQueue(), 20);
    else for (const w of this.drainWaiters.splice(0)) w();
  }
}
