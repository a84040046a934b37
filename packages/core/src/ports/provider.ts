import type { Readable } from 'node:stream';
import type { Clock } from '../domain/clock';
import type { Mode } from '../domain/catalogue';
import type { PacingReport } from '../domain/pacing';
import type { Segment, Transcript } from '../domain/transcript';

/** The audio of one job, offered in the forms providers want. Each accessor starts a fresh stream. */
export interface AudioInput {
  /** Decoded 16 kHz mono s16le PCM, streamed from storage through the decoder. */
  pcm(signal?: AbortSignal): AsyncIterable<Buffer>;
  /**
   * Decoded 16 kHz s16le PCM keeping the source's channels (a mono source gives 1), interleaved: every
   * chunk is whole frames of `channels` samples. Resolves once decoding has begun (the count is known);
   * rejects as `pcm()` fails (DecodeError, EmptyDecodeError, ...). Read `pcm` to its end or return it.
   * For providers that transcribe each channel on its own (job option `multichannel`).
   */
  pcmChannels?(signal?: AbortSignal): Promise<MultichannelPcm>;
  /** The original object bytes, streamed from storage. */
  original(signal?: AbortSignal): Promise<{ stream: Readable; size?: number; contentType?: string; filename: string }>;
  /** A time-limited URL the provider can fetch the original from (batch URL mode). */
  presignedUrl?(): Promise<string>;
  /** Size of the original object in bytes, when known. */
  size?: number;
}

/** What `AudioInput.pcmChannels` gives: the channel count and the interleaved PCM. */
export interface MultichannelPcm {
  channels: number;
  pcm: AsyncIterable<Buffer>;
}

/** Events a provider session reports while it runs (feeds traces and metrics). */
export type SessionEvent =
  | { type: 'session:open'; requestId?: string }
  | { type: 'session:first-result'; audioSeconds: number }
  /**
   * A final result; `segment` (audio time of this session) lets the worker checkpoint long streams.
   * A multichannel stream's segments carry their `channel`, and `channels` is the stream's count (a
   * checkpoint resumes where every channel is final).
   */
  | { type: 'session:final'; index: number; start: number; end: number; segment?: Segment; channels?: number }
  | { type: 'session:reconnect'; attempt: number; reason: string }
  | { type: 'session:chunk-lateness'; ms: number }
  | { type: 'session:closed'; code?: number; reason?: string };

export interface SessionContext {
  signal: AbortSignal;
  clock: Clock;
  onEvent?: (e: SessionEvent) => void;
}

export interface TranscribeRequest {
  mode: Mode;
  model: string;
  options: Record<string, string | number | boolean | string[]>;
  audio: AudioInput;
  /**
   * A label for the provider's own usage records: the job's batch id, when it has one. A provider
   * that takes request tags sends it (Deepgram: `tag=<batchId>`); the others ignore it.
   */
  tag?: string;
}

export interface SessionStats {
  requestId: string;
  bytesSent: number;
  chunksSent: number;
  finalResults: number;
  reconnects: number;
  pacing?: PacingReport;
}

export interface ProviderResult {
  transcript: Transcript;
  stats: SessionStats;
}

/** Which form of the audio a session will read first: lets the worker open it before taking a slot. */
export type AudioForm = 'pcm' | 'original' | 'url';

/** Provider port: one transcription session (batch request or paced stream). */
export interface Provider {
  readonly name: string;
  /** The audio form a session in `mode` reads (a hint; default: none is prefetched). */
  audioForm?(mode: 'batch' | 'stream'): AudioForm;
  transcribe(req: TranscribeRequest, ctx: SessionContext): Promise<ProviderResult>;
  close?(): Promise<void>;
}

/** The audio form a provider's session in `mode` reads: its own answer, else decoded PCM for a stream (paced sends). */
export function audioFormOf(provider: Pick<Provider, 'audioForm'>, mode: 'batch' | 'stream'): AudioForm | undefined {
  return provider.audioForm?.(mode) ?? (mode === 'stream' ? 'pcm' : undefined);
}
