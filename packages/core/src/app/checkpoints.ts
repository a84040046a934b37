import { resumeByteOffset, shiftSegment, type StreamCheckpoint } from '../domain/checkpoint';
import type { Clock } from '../domain/clock';
import type { JobSpec } from '../domain/job-spec';
import type { Segment } from '../domain/transcript';
import type { StorageAudioInput } from '../ports/audio-input';
import type { Storage } from '../ports/storage';

/** Seconds after the last finalised word where a resumed session starts. */
export const RESUME_MARGIN_S = 0.25;

/** Where a job's stream checkpoint lives: beside its outputs, `<keyBase>.checkpoint.json`. */
export function checkpointKey(spec: JobSpec): string {
  return `${spec.output.keyBase}.checkpoint.json`;
}

/** The job's checkpoint, if one exists and belongs to this very job (same ETag, provider, model). */
export async function loadCheckpoint(storage: Storage, spec: JobSpec): Promise<StreamCheckpoint | null> {
  if (!(await storage.head(spec.output.bucket, checkpointKey(spec)))) return null;
  const { body } = await storage.get(spec.output.bucket, checkpointKey(spec));
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c as Buffer);
  try {
    const cp = JSON.parse(Buffer.concat(parts).toString('utf8')) as StreamCheckpoint;
    if (cp.v !== 1 || cp.etag !== spec.source.etag || cp.provider !== spec.provider || cp.model !== spec.model) return null;
    return cp;
  } catch {
    return null;
  }
}

/** The audio from `seconds` on: the decoded PCM before that point is read and dropped. */
export function resumedAudio(audio: StorageAudioInput, seconds: number): StorageAudioInput {
  const skip = resumeByteOffset(seconds);
  const resumed = Object.create(audio) as StorageAudioInput;
  resumed.pcm = async function* (signal?: AbortSignal) {
    let dropped = 0;
    for await (const chunk of audio.pcm(signal)) {
      if (dropped >= skip) {
        yield chunk;
        continue;
      }
      const take = Math.min(chunk.length, skip - dropped);
      dropped += take;
      if (take < chunk.length) yield chunk.subarray(take);
    }
  };
  return resumed;
}

/**
 * Records the finals of a stream session and writes a checkpoint at most every `intervalMs` (and only
 * when something new was finalised). Failures to write are ignored: a checkpoint is an optimisation.
 */
export class CheckpointRecorder {
  private readonly segments: Segment[];
  /** Where the session being recorded starts (its times are shifted by it). */
  private readonly base: number;
  private offset: number;
  private dirty = false;
  private lastWrite: number;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly storage: Storage,
    private readonly spec: JobSpec,
    private readonly clock: Clock,
    private readonly intervalMs: number,
    from: StreamCheckpoint | null,
  ) {
    this.segments = from ? [...from.segments] : [];
    this.offset = from?.offsetSeconds ?? 0;
    this.base = this.offset;
    this.lastWrite = clock.now();
  }

  onFinal(segment: Segment): void {
    const seg = shiftSegment(segment, this.base);
    if (seg.end <= this.offset) return; // a duplicate (or a revision of an older segment)
    this.segments.push(seg);
    // Resume a little after the last word: a final comes after the recogniser heard silence, and a
    // session that starts on the tail of a word recognises its first utterance worse.
    this.offset = seg.end + RESUME_MARGIN_S;
    this.dirty = true;
    if (this.clock.now() - this.lastWrite >= this.intervalMs) this.flush();
  }

  /** Write what is finalised now, whatever the interval (a failing session saves its progress first). */
  saveNow(): Promise<void> {
    this.flush();
    return this.writing;
  }

  private flush(): void {
    if (!this.dirty) return;
    this.dirty = false;
    this.lastWrite = this.clock.now();
    const cp: StreamCheckpoint = {
      v: 1,
      etag: this.spec.source.etag,
      provider: this.spec.provider,
      model: this.spec.model,
      offsetSeconds: this.offset,
      segments: [...this.segments],
      updatedAt: new Date().toISOString(),
    };
    this.writing = this.writing
      .then(() => this.storage.put(this.spec.output.bucket, checkpointKey(this.spec), JSON.stringify(cp), { contentType: 'application/json' }))
      .then(
        () => undefined,
        () => undefined,
      );
  }

  /** Wait for pending writes (tests and shutdown). */
  settled(): Promise<void> {
    return this.writing;
  }

  /** The job is done: the checkpoint is no longer needed. */
  async clear(): Promise<void> {
    await this.writing;
    await this.storage.delete(this.spec.output.bucket, checkpointKey(this.spec)).catch(() => undefined);
  }
}
