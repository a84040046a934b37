/** Every frame an emulator received or sent, for pacing and protocol assertions. */
import { performance } from 'node:perf_hooks';

export interface FrameRecord {
  session: string;
  direction: 'in' | 'out';
  kind: 'binary' | 'text' | 'http';
  size: number;
  /** Milliseconds on the emulator's monotonic clock. */
  at: number;
  /** For text frames: the message type, when it has one. */
  type?: string;
}

/** Every frame received or sent, for pacing and protocol assertions. Bounded to the last `limit`. */
export class FrameLog {
  private readonly records: FrameRecord[] = [];
  constructor(private readonly limit = 200_000) {}
  record(r: Omit<FrameRecord, 'at'> & { at?: number }): void {
    this.records.push({ ...r, at: r.at ?? performance.now() });
    if (this.records.length > this.limit) this.records.splice(0, this.records.length - this.limit);
  }
  frames(session?: string): FrameRecord[] {
    return session ? this.records.filter((r) => r.session === session) : [...this.records];
  }
  clear(): void {
    this.records.length = 0;
  }
}
