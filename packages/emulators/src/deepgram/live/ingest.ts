/**
 * Live audio in: the client's frames decoded to 16 kHz PCM (in-process for raw linear16/mulaw, through
 * ffmpeg for containers and headered encodings), and the pacing gate that lets PCM reach the
 * recogniser at most `maxRealtimeFactor` × real time plus a `burstAllowanceMs` head start (§7.3).
 *
 * Raw audio of `channels=N` (§2.2) is interleaved frames of N samples: it is split per channel, each
 * channel converted on its own, then with `multichannel=true` kept apart (one PCM per channel, each
 * transcribed on its own with `channel_index: [c, N]`) or else mixed down to one mono PCM.
 */
import { performance } from 'node:perf_hooks';
import { PassThrough } from 'node:stream';
import { decodeToPcm } from '@scribe-fleet/core/adapters/s3/ffmpeg-decoder';
import { closeReason, downmix, FrameSplitter, PcmConverter } from '../../kit';
import { PCM_BPS, type ResolvedDeepgramOptions } from '../options';
import { isTrue, SNIFFED_ENCODINGS } from '../query';

export interface Ingest {
  write(frame: Buffer): void;
  end(): Promise<void>;
  destroy(): void;
  /** Bytes per second of the client's audio when known (raw encodings: sample rate × sample bytes × channels). */
  byteRate?: number;
}

export interface IngestSink {
  /** 16 kHz s16le PCM, one buffer per output channel (`liveChannels(q).outputs` of them, equal lengths). */
  onPcm(pcm: Buffer[]): void;
  /** Seconds of decoded container audio (the rate check of containers runs on decoded audio). */
  onDecodedSeconds(seconds: number): void;
  /** The audio cannot be decoded: close 1008 DATA-0000 with this reason. */
  onUndecodable(reason: string): void;
}

/** The raw encodings decoded in-process, and their bytes per sample. */
const RAW_SAMPLE_BYTES: Record<string, number> = { linear16: 2, mulaw: 1 };

export interface LiveChannels {
  /** Channels of the client's audio: the `channels` parameter for raw audio (read only with `encoding`, §2.2). */
  channels: number;
  /** Channels transcribed (and recognisers needed): `channels` with `multichannel=true` on raw audio, else 1. */
  outputs: number;
}

/**
 * The channel layout of a session, known at the handshake. Deviation: containers (no `encoding`, or
 * a headered one) are decoded to mono even with `multichannel=true` (`channel_index` [0, 1]); the
 * channel count of a container is known only once it is decoded, after the recognisers are taken.
 */
export function liveChannels(q: URLSearchParams): LiveChannels {
  const encoding = q.get('encoding');
  const channels = encoding !== null ? Number(q.get('channels') ?? 1) : 1;
  const raw = encoding !== null && encoding in RAW_SAMPLE_BYTES;
  return { channels, outputs: raw && isTrue(q, 'multichannel') ? channels : 1 };
}

/**
 * Raw interleaved audio of `channels` channels at `sampleRate` → 16 kHz s16le per channel (one
 * converter each, so resampling state never crosses channels), or their mono mix.
 */
export class RawDecoder {
  private readonly splitter: FrameSplitter;
  private readonly converters: PcmConverter[];

  constructor(
    sampleRate: number,
    encoding: 'linear16' | 'mulaw',
    channels: number,
    private readonly keepChannels: boolean,
  ) {
    this.splitter = new FrameSplitter(channels, RAW_SAMPLE_BYTES[encoding]!);
    this.converters = Array.from({ length: channels }, () => new PcmConverter(sampleRate, encoding === 'mulaw' ? 'pcm_mulaw' : 'pcm_s16le'));
  }

  convert(frame: Buffer): Buffer[] {
    // Mono keeps the converter's own carry of an odd byte (no frame splitting needed).
    if (this.converters.length === 1) return [this.converters[0]!.convert(frame)];
    const parts = this.splitter.split(frame).map((p, c) => this.converters[c]!.convert(p));
    return this.keepChannels ? parts : [downmix(parts)];
  }
}

/** The decoder for the session's `encoding`; undefined (after `onUndecodable`) when there is none here. */
export function openIngest(q: URLSearchParams, sink: IngestSink): Ingest | undefined {
  const encoding = q.get('encoding');
  const sampleRate = Number(q.get('sample_rate') ?? 16000);
  const layout = liveChannels(q);
  if (encoding === 'linear16' || encoding === 'mulaw') {
    const dec = new RawDecoder(sampleRate, encoding, layout.channels, layout.outputs > 1);
    return {
      byteRate: sampleRate * RAW_SAMPLE_BYTES[encoding]! * layout.channels,
      write: (frame) => {
        const pcm = dec.convert(frame);
        if (pcm[0]!.length) sink.onPcm(pcm);
      },
      end: async () => undefined,
      destroy: () => undefined,
    };
  }
  if (encoding === null || SNIFFED_ENCODINGS.includes(encoding)) return containerIngest(sink);
  sink.onUndecodable(closeReason(`DATA-0000: could not decode the audio (the emulator cannot decode encoding=${encoding})`));
  return undefined;
}

function containerIngest(sink: IngestSink): Ingest {
  const input = new PassThrough();
  const abort = new AbortController();
  const done = (async () => {
    for await (const pcm of decodeToPcm(input, { signal: abort.signal })) {
      sink.onPcm([pcm]);
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

/**
 * PCM reaches `feed` at most maxRealtimeFactor × real time since the first audio (+ burst); the rest
 * waits. It passes one buffer per output channel (equal lengths); the budget is audio time, counted
 * in bytes of one channel's 16 kHz s16le.
 */
export class PacingGate {
  private readonly queue: Buffer[][] = [];
  private drainWaiters: Array<() => void> = [];
  private pump: NodeJS.Timeout | undefined;
  private fedBytes = 0;
  private stopped = false;

  constructor(
    private readonly options: ResolvedDeepgramOptions,
    /** performance.now() of the first audio frame. */
    private readonly firstAudioAt: () => number | undefined,
    private readonly feed: (pcm: Buffer[]) => void,
  ) {}

  push(pcm: Buffer[]): void {
    if (!pcm[0]?.length || this.stopped) return;
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
      this.fedBytes += pcm[0]!.length;
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
      const len = head[0]!.length;
      const take = len <= budget ? len : budget - (budget % 2);
      if (take <= 0) break;
      if (take === len) this.queue.shift();
      else this.queue[0] = head.map((b) => b.subarray(take));
      this.fedBytes += take;
      this.feed(take === len ? head : head.map((b) => b.subarray(0, take)));
      budget -= take;
    }
    if (this.stopped) return;
    if (this.queue.length) this.pump = setTimeout(() => this.pumpQueue(), 20);
    else for (const w of this.drainWaiters.splice(0)) w();
  }
}
