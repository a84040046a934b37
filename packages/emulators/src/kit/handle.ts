/** What every emulator's handle offers, whatever its provider. */
import type { ConcurrencyTracker } from './concurrency';
import type { FaultHooks, FaultPlan } from './faults';
import type { FrameLog } from './frame-log';

/** The base every emulator handle offers. */
export interface EmulatorHandle {
  readonly name: string;
  /** http://127.0.0.1:port (REST) — WebSocket clients use ws://127.0.0.1:port. */
  readonly url: string;
  readonly port: number;
  readonly concurrency: ConcurrencyTracker;
  readonly frames: FrameLog;
  faults: FaultHooks;
  /** The `--fault` specs in force (also switched over HTTP at `/_emulator/faults`). */
  readonly faultPlan: FaultPlan;
  close(): Promise<void>;
}
