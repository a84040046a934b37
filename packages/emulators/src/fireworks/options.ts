/** The Fireworks streaming emulator's public names (all of them exported by index.ts): path, options, fault hooks, rule violations, session records, handle. */
import type { FaultHooks } from '../kit';
import type { LiveEmulatorHandle, LiveEmulatorOptions } from '../live/server';
import type { LiveSessionInfo } from '../live/session';

export const FIREWORKS_WS_PATH = '/v1/audio/transcriptions/streaming';

export interface FireworksFaults extends FaultHooks {
  /** When the next session asks for the final checkpoint/trace, close with this code instead of echoing. */
  closeBeforeFinalEcho?: number;
  /** The next session never answers the final checkpoint/trace. */
  ignoreFinal?: boolean;
}

/**
 * Shared options (live/server.ts) as Fireworks takes them: `maxConcurrentPerKey` defaults to 50
 * (UNCONFIRMED; one guide claims 50 serverless; over it: HTTP 429 at the upgrade), and so does recogniser
 * capacity; `partialMs` to 300; `serviceTimeMs` delays the answer to the final checkpoint/trace.
 */
export interface FireworksEmulatorOptions extends LiveEmulatorOptions {
  apiKeys: string[];
  /** Retry-After (seconds) on the 429. Default 1. */
  retryAfterSeconds?: number;
  /** Close (1008) on frames that are not whole samples or outside 50–400 ms. Default false: record a warning (§7.5). */
  strictFrames?: boolean;
  /** Close (1008) when audio runs ahead of wall time by more than `rateAllowanceSeconds`. Default true. */
  strictPacing?: boolean;
  rateAllowanceSeconds?: number;
  /** Re-send finished segments later with revised (punctuated) text under the same id. Default true. */
  reviseEarlier?: boolean;
  /**
   * Silence after speech that finalises the segment in progress, ms (default 500). UNCONFIRMED: Fireworks
   * documents no endpointing; its VAD finalises a segment at a pause, and long speech every few seconds.
   */
  pauseMs?: number;
}

export interface FireworksViolation {
  session: string;
  rule: 'frame-not-whole-samples' | 'frame-duration' | 'too-fast' | 'invalid-message' | 'closed-without-final' | 'audio-after-final';
  detail: string;
}

export interface FireworksSessionInfo extends LiveSessionInfo {
  key: string;
  /** Who closed: the emulator (strict rule or fault) or the client. */
  closedBy?: 'server' | 'client';
  checkpoints: string[];
  /** The final checkpoint/trace was echoed. */
  finalEchoed: boolean;
  messagesSent: number;
  /** Finished segments re-sent later with revised text under the same id. */
  revisionsSent: number;
}

export interface FireworksEmulatorHandle extends LiveEmulatorHandle<FireworksFaults, FireworksSessionInfo> {
  /** Every rule a client broke (recorded in warn and strict mode alike). */
  violations(session?: string): FireworksViolation[];
}
