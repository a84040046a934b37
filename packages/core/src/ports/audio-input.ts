import type { Source } from '../domain/job-spec';
import type { AudioInput } from './provider';
import type { Storage } from './storage';
import type { Telemetry } from './telemetry';

/**
 * The audio of one job as an attempt uses it: the forms a provider reads (AudioInput) plus the
 * attempt's own handles on it (work before the slot, prefetch, clean-up, what decoding learnt).
 * The S3 adapter (adapters/s3/audio-input.ts, ffmpeg behind it) implements it.
 */
export interface StorageAudioInput extends AudioInput {
  /** sha256 of the original bytes, known once one stream of the original has been read to the end. */
  readonly sha256: string | undefined;
  /**
   * Work that needs no provider slot, done before one is taken: inputs that need seeking (mp4/m4a,
   * sniffed from their first bytes) are downloaded to a spool file now, so later decodes read it.
   */
  prepare(signal?: AbortSignal): Promise<void>;
  /**
   * Open the original's GET now (before a slot is taken), so the session starts without waiting for
   * storage. Used by `original()` if it is younger than `maxAgeMs` (an idle S3 response should not be
   * held for long); otherwise dropped and reopened.
   */
  prefetchOriginal(maxAgeMs?: number): void;
  /** Remove the spool file and any unused prefetched stream. */
  dispose(): Promise<void>;
  /**
   * Warning codes recorded while the audio was decoded, each once (today only `TRUNCATED_INPUT`,
   * when `allowTruncated` let a truncated input through). Read it after the session has ended.
   */
  readonly warnings: string[];
}

export interface StorageAudioInputOptions {
  spoolDir?: string;
  presignSeconds?: number;
  telemetry?: Telemetry;
  /** Config `TRUNCATION_TOLERANCE` (fraction, default 0.02): see DecodeOptions.truncationTolerance. */
  truncationTolerance?: number;
  /** Config `ALLOW_TRUNCATED` (default false): truncated input completes with a `TRUNCATED_INPUT` warning. */
  allowTruncated?: boolean;
}

/**
 * Audio input port: the audio of a job's source object, read through `storage` (every accessor
 * streams from it, pinned to the source's ETag). Injected into the processor so the application
 * layer neither spawns a decoder nor knows which one (the worker wires `storageAudioInput`).
 */
export type AudioInputFactory = (storage: Storage, source: Source, opts?: StorageAudioInputOptions) => StorageAudioInput;
