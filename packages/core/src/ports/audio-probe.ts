import type { Readable } from 'node:stream';

/**
 * Measures the audio of a whole object by reading it through, for what no header states (Ogg without
 * its tail, ASF, ADTS, a WAV or WebM written to a pipe). The ffmpeg adapter
 * (adapters/s3/ffmpeg-audio-probe.ts) implements it; app/probe-duration.ts calls it only when the
 * ranged reads of the header gave nothing.
 */
export interface AudioProbe {
  /**
   * Seconds of audio `body` holds, and the bytes read from it. Streams (never holds the object whole).
   * `container` is what the first bytes announced (audio-header.ts `sniffContainer`): an mp4 whose
   * index sits behind its media cannot be decoded from a pipe, only read through to the index.
   * Throws DecodeError when the input cannot be read as audio, EmptyDecodeError when it holds none.
   */
  measure(body: Readable, hint: { container?: string; signal?: AbortSignal }): Promise<{ seconds: number; bytesRead: number }>;
}
