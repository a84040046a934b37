/**
 * Turning a spooled upload into recogniser finals: ffmpeg decode → the local recogniser, on one of the
 * emulator's recognisers (RecogniserPool: a request waits in FIFO order while all are busy, and stops
 * waiting when its client goes away). whisper.cpp mode runs one inference at a time (its global
 * mutex). Benchmark mode (`serviceTimeMs`) holds the request instead and takes no recogniser.
 */
import { createReadStream } from 'node:fs';
import type { EventEmitter } from 'node:events';
import { decodeToPcm } from '@scribe-fleet/core/adapters/s3/ffmpeg-decoder';
import type { SphinxResult } from '@scribe-fleet/core/adapters/sphinx-recogniser';
import type { FaultHooks } from '../kit/faults';
import { openRecogniser } from '../kit/recogniser';
import { RecogniserPool } from '../kit/recogniser-pool';
import { delay } from '../kit/util';
import type { OpenAIEmulatorMode, OpenAIRequestRecord } from './types';

export interface TranscriberOptions {
  mode: OpenAIEmulatorMode;
  pool: RecogniserPool;
  serviceTimeMs: number | undefined;
  /** Gets 'queued', 'recognising' and 'recognised' with the request's record. */
  events: EventEmitter;
  /** The handle's fault hooks, read at each request (tests replace the object). */
  faults: () => FaultHooks;
  /** Destroy the request's socket (the drop-after-audio hook). */
  dropSocket: (rec: OpenAIRequestRecord) => void;
}

export class Transcriber {
  /** Runs in flight (recognitions, or held benchmark requests), with the high-water mark. */
  readonly inference = { inFlight: 0, max: 0 };
  /** whisper.cpp's global `whisper_mutex`: one inference at a time, FIFO; a waiter whose client left stops waiting. */
  private readonly mutex = new RecogniserPool(1);
  constructor(private readonly opts: TranscriberOptions) {}

  /** Finals of the file; rejects when `signal` aborts (the client went away), or with ffmpeg's error. */
  async run(file: { path: string; bytes: number }, rec: OpenAIRequestRecord, signal: AbortSignal): Promise<SphinxResult> {
    const unlock = this.opts.mode === 'whisper.cpp' ? await this.mutex.acquire(signal) : undefined;
    try {
      if (this.opts.serviceTimeMs !== undefined) {
        const ms = this.opts.serviceTimeMs;
        await this.counted(() => Promise.race([delay(ms), aborted(signal)]));
        return { finals: [], duration: file.bytes / 32_000 };
      }
      const release = await this.recogniser(rec, signal);
      try {
        return await this.counted(() => this.recognise(file.path, rec, signal));
      } finally {
        release();
      }
    } finally {
      unlock?.();
    }
  }

  private async counted<T>(work: () => Promise<T>): Promise<T> {
    const n = this.inference;
    n.inFlight += 1;
    n.max = Math.max(n.max, n.inFlight);
    try {
      return await work();
    } finally {
      n.inFlight -= 1;
    }
  }

  /** A recogniser from the pool, queueing while all are busy; the release given back runs once. */
  private async recogniser(rec: OpenAIRequestRecord, signal: AbortSignal): Promise<() => void> {
    const { pool, events } = this.opts;
    const waits = !signal.aborted && (pool.inUse >= pool.capacity || pool.queued > 0);
    const pending = pool.acquire(signal);
    if (waits) events.emit('queued', rec);
    const release = await pending;
    events.emit('recognising', rec);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      release();
      events.emit('recognised', rec);
    };
  }

  /** ffmpeg decode → recogniser; honours the socket-drop hook after N ms of audio. */
  private async recognise(file: string, rec: OpenAIRequestRecord, signal: AbortSignal): Promise<SphinxResult> {
    const session = openRecogniser();
    const kill = () => session.kill();
    signal.addEventListener('abort', kill, { once: true });
    const faults = this.opts.faults();
    const dropAt = faults.dropAfterAudioMs;
    if (dropAt !== undefined) delete faults.dropAfterAudioMs;
    let audioBytes = 0;
    try {
      for await (const pcm of decodeToPcm(createReadStream(file), { signal })) {
        audioBytes += pcm.length;
        if (dropAt !== undefined && audioBytes / 32 >= dropAt) {
          rec.status = -1;
          this.opts.dropSocket(rec);
          throw new Error('socket dropped by fault hook');
        }
        await session.write(pcm);
      }
      return await session.end();
    } finally {
      signal.removeEventListener('abort', kill);
      session.kill();
    }
  }
}

/** Rejects when the signal aborts (never resolves). */
function aborted(signal: AbortSignal): Promise<never> {
  return new Promise<never>((_, reject) => {
    if (signal.aborted) return reject(new Error('client went away'));
    signal.addEventListener('abort', () => reject(new Error('client went away')), { once: true });
  });
}
