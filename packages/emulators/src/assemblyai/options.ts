/** The AssemblyAI v3 emulator's public names (all of them exported by index.ts): constants, options, fault hooks, session records, handle. */
import type { FaultHooks } from '../kit';
import type { LiveEmulatorHandle, LiveEmulatorOptions } from '../live/server';
import type { LiveSessionInfo } from '../live/session';

export const ASSEMBLYAI_WS_PATH = '/v3/ws';
/** §3.2's models plus those the official Node SDK (4.41) lists in `StreamingSpeechModel`. */
export const ASSEMBLYAI_SPEECH_MODELS = [
  'universal-streaming-english',
  'universal-streaming-multilingual',
  'whisper-rt',
  'u3-rt-pro',
  'u3-rt-pro-beta-1',
  'u3-pro',
  'universal-3-5-pro',
  'universal-3-6',
  'universal-3-6-pro',
] as const;
/** §3.6: the reason text of the concurrency/new-session refusal (lower-case "connection" per the concurrency page). */
export const TOO_MANY_SESSIONS_REASON = 'Unauthorized connection: Too many concurrent sessions';

export interface AssemblyAIFaults extends FaultHooks {
  /** Close the next session with 3005 "Session Cancelled: An error occurred" after this much audio. */
  cancelAfterAudioMs?: number;
  /** Close the next session with this code right after the upgrade, before `Begin`. */
  closeBeforeBegin?: number;
  /** The next session answers Terminate with nothing ('ignore') or by dropping the socket ('drop'). */
  onTerminate?: 'ignore' | 'drop';
}

/**
 * Shared options (live/server.ts) as AssemblyAI takes them: `maxConcurrentPerKey` defaults to unlimited
 * (§3.8: paid accounts have no concurrency cap); `partialMs` to 200; at recogniser capacity a session is
 * closed as over the session limit (1008, or `tooManySessionsCode`); `serviceTimeMs` delays the answer to
 * Terminate (remaining Turns → Termination → close).
 */
export interface AssemblyAIEmulatorOptions extends LiveEmulatorOptions {
  /** Valid API keys (raw, sent as `Authorization: <key>`). */
  apiKeys: string[];
  /** Bad or missing credentials: accept the upgrade then close 1008 (default), or refuse it with HTTP 401. UNCONFIRMED which the service does. */
  authFailure?: 'close' | 'http';
  /** A missing/unknown `speech_model` or another invalid query parameter: Error + close 3006 (default) or HTTP 400 at the upgrade (UNCONFIRMED). */
  invalidParams?: 'close' | 'http';
  /** Refuse connections without `speech_model` (default true: current docs say the request fails). */
  requireSpeechModel?: boolean;
  /** New sessions per key per rolling minute (§3.8: free 5, paid 100+). Default 100. */
  newSessionsPerMinute?: number;
  /** Close code for both session limits: 1008 (default) or 3009 (§3.6 lists both). */
  tooManySessionsCode?: 1008 | 3009;
  /** Enforce 50–1000 ms per audio frame (default true). */
  strictFrameDuration?: boolean;
  /** Enforce the real-time rate (default true). */
  strictRate?: boolean;
  /** How far (s) the audio may run ahead of wall time before close 3007. Default 5 (the real service tolerated ~300 s once; do not rely on it). */
  rateAllowanceSeconds?: number;
  /** Send `{"type":"Error","error_code","error"}` before an error close (default true). */
  errorFrames?: boolean;
  /** Session age limit in seconds (default 3 h → close 3008). */
  maxSessionSeconds?: number;
  /** With format_turns=true: emit the legacy unformatted + formatted end-of-turn pair with the same turn_order. */
  legacyDoubleFormattedTurn?: boolean;
  /** Close code after `inactivity_timeout` (UNCONFIRMED; default 1000 after a Termination). */
  inactivityCloseCode?: number;
}

export interface AssemblyAISessionInfo extends LiveSessionInfo {
  key: string | null;
  /** Whether `Begin` was sent. */
  began: boolean;
  /** Whether the client sent Terminate / the server sent Termination. */
  terminateReceived: boolean;
  terminationSent: boolean;
  /** Turn messages sent, and how many of them had end_of_turn true. */
  turnsSent: number;
  endOfTurnsSent: number;
  /** SpeakerRevision messages sent (one before Termination with `speaker_labels=true`). */
  speakerRevisionsSent: number;
}

export interface AssemblyAIEmulatorHandle extends LiveEmulatorHandle<AssemblyAIFaults, AssemblyAISessionInfo> {
  /** Issue a temporary token as `GET /v3/token` would. */
  issueToken(key: string, expiresInSeconds?: number, maxSessionSeconds?: number): string;
}
