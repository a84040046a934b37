import { resumeByteOffset, shiftSegment, wordsFrom, type StreamCheckpoint } from '../domain/checkpoint';
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

/** `pcm` without its first `skip` bytes (read and dropped). */
async function* skipBytes(pcm: AsyncIterable<Buffer>, skip: number): AsyncGenerator<Buffer> {
  let dropped = 0;
  for await (const chunk of pcm) {
    if (dropped >= skip) {
      yield chunk;
      continue;
    }
    const take = Math.min(chunk.length, skip - dropped);
    dropped += take;
    if (take < chunk.length) yield chunk.subarray(take);
  }
}

/**
 * The audio from `seconds` on, in both decoded forms: the PCM before that point is read and
 * dropped (mono: `seconds` × 32 000 bytes; interleaved channels: as many whole frames, N times that).
 */
export function resumedAudio(audio: StorageAudioInput, seconds: number): StorageAudioInput {
  const resumed = Object.create(audio) as StorageAudioInput;
  resumed.pcm = (signal?: AbortSignal) => skipBytes(audio.pcm(signal), resumeByteOffset(seconds));
  if (audio.pcmChannels) {
    const pcmChannels = audio.pcmChannels.bind(audio);
    resumed.pcmChannels = async (signal?: AbortSignal) => {
      const { channels, pcm } = await pcmChannels(signal);
      return { channels, pcm: skipBytes(pcm, resumeByteOffset(seconds, channels)) };
    };
  }
  return resumed;
}

/**
 * Records the finals of a stream session and writes a checkpoint at most every `intervalMs` (and only
 * when something new was finalised). Failures to write are ignored: a checkpoint is an optimisation.
 *
 * Multichannel finals (a segment with `channel`, the event's `channels`) are kept per channel: each
 * channel's words from the end of its last kept word on, and the offset is the earliest point where
 * a channel may still have words to come (a channel with no word yet holds it at the session's
 * start), so a resumed session re-sends what any channel still needs.
 */
export class CheckpointRecorder {
  private readonly segments: Segment[];
  /** Where the session being recorded starts (its times are shifted by it). */
  private readonly base: number;
  private offset: number;
  /** Multichannel: the end of each channel's last kept word (null: none yet). */
  private channelEnds: Array<number | null> | undefined;
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
    if (from?.channelEnds) this.channelEnds = [...from.channelEnds];
    this.lastWrite = clock.now();
  }

  onFinal(segment: Segment, channels?: number): void {
    if (segment.channel !== undefined && channels !== undefined && channels > 1) return this.onChannelFinal(segment, segment.channel, channels);
    const seg = shiftSegment(segment, this.base);
    if (seg.end <= this.offset) return; // a duplicate (or a revision of an older segment)
    this.segments.push(seg);
    // Resume a little after the last word: a final comes after the recogniser heard silence, and a
    // session that starts on the tail of a word recognises its first utterance worse.
    this.offset = seg.end + RESUME_MARGIN_S;
    this.dirty = true;
    if (this.clock.now() - this.lastWrite >= this.intervalMs) this.flush();
  }

  private onChannelFinal(segment: Segment, channel: number, channels: number): void {
    const ends = (this.channelEnds ??= []);
    while (ends.length < channels) ends.push(null);
    // Words this channel's earlier finals (of this or an earlier session) already hold are dropped.
    const seg = wordsFrom(shiftSegment(segment, this.base), ends[channel]);
    if (!seg) return;
    this.segments.push(seg);
    ends[channel] = seg.end;
    // As for one channel, a little after each channel's last word; a silent channel holds the start.
    this.offset = Math.max(this.base, Math.min(...ends.map((e) => (e === null ? this.base : e + RESUME_MARGIN_S))));
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
    if (this.channelEnds) cp.channelEnds = [...this.channelEnds];
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
