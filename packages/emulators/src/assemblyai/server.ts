/**
 * AssemblyAI Universal Streaming v3 emulator (providers.md §3, checklist §7.4): `wss://…/v3/ws` with the
 * real handshake (handshake.ts), per-frame duration and real-time rate enforcement (close 3007), text-frame
 * validation (3006), Turn messages built from the local recogniser with endpointing like the service's
 * turn detection (turns.ts), speaker labels by voice pitch with `speaker_labels` / `max_speakers`
 * (speakers.ts), ForceEndpoint / UpdateConfiguration / KeepAlive / inactivity_timeout, the
 * Terminate → Turns → (SpeakerRevision) → Termination → 1000 handshake, session age limit (3008), new-sessions-per-minute and
 * per-key concurrency limits (1008 / 3009), temporary tokens (`GET /v3/token`), and fault hooks.
 *
 * Capacity: each session takes a recogniser from `recognisers` when it opens; at capacity it is closed as
 * the service closes a session over its limit (1008, or `tooManySessionsCode`, TOO_MANY_SESSIONS_REASON).
 *
 * Scripted faults (`faultSpecs` / `--fault`, common.ts), on sessions that passed auth and parameter
 * checks: `429-storm` → the real session-limit answer (upgrade, then close 1008 — or
 * `tooManySessionsCode` 3009 — "Unauthorized connection: Too many concurrent sessions", no Begin);
 * `5xx` → the service's internal-error close (upgrade, Error frame, close 3005 "Session Cancelled: An
 * error occurred", no Begin), `5xx=S` → HTTP S at the upgrade instead (a gateway failing);
 * `never-answer` → upgrade and Begin, audio accepted, then nothing: no Turns, no Termination, no
 * close, no limits; `drop-after=S` → a normal session whose socket is destroyed S s after the upgrade
 * (1006). `early=` does not apply (no REST upload here). `serviceTimeMs` delays the answer to
 * Terminate (remaining Turns → Termination → close) by that many ms.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { msUntil } from '../kit';
import { LiveServer } from '../live/server';
import type { LiveSession } from '../live/session';
import { applyHandshakeFaults, refuseUpgrade } from '../kit';
import { CANCELLED_REASON, CLOSE_CANCELLED, CLOSE_INVALID, CLOSE_UNAUTHORIZED, closeWithError, unauthorized } from './errors';
import { authenticate, parseParams, TokenStore } from './handshake';
import {
  ASSEMBLYAI_WS_PATH,
  TOO_MANY_SESSIONS_REASON,
  type AssemblyAIEmulatorHandle,
  type AssemblyAIEmulatorOptions,
  type AssemblyAIFaults,
  type AssemblyAISessionInfo,
} from './options';
import { runSession, sendBegin, takeSessionFaults } from './session';

export async function startAssemblyAIEmulator(opts: AssemblyAIEmulatorOptions): Promise<AssemblyAIEmulatorHandle> {
  const keys = new Set(opts.apiKeys);
  const live = new LiveServer<AssemblyAIFaults, AssemblyAISessionInfo>('assemblyai', opts, Infinity);
  const tokens = new TokenStore();
  const starts = new Map<string, number[]>(); // key → session start times (rolling minute)

  const onUpgrade = async (req: IncomingMessage, socket: Duplex, accept: () => Promise<WebSocket>) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== ASSEMBLYAI_WS_PATH) return refuseUpgrade(socket, 404, { error: 'Not Found' });
    if (await applyHandshakeFaults(live.faults, socket)) return;
    const info: AssemblyAISessionInfo = {
      id: randomUUID(),
      key: null,
      query: Object.fromEntries(url.searchParams),
      openedAt: performance.now(),
      began: false,
      terminateReceived: false,
      terminationSent: false,
      audioSeconds: 0,
      turnsSent: 0,
      endOfTurnsSent: 0,
      speakerRevisionsSent: 0,
    };

    // Each handshake failure refuses over HTTP or closes right after the upgrade (no Begin).
    const refuse = async (mode: 'close' | 'http', status: number, code: number, reason: string) => {
      if (mode === 'http') {
        live.frames.record({ session: info.id, direction: 'out', kind: 'http', size: 0, type: String(status) });
        return refuseUpgrade(socket, status, { error: reason });
      }
      const session = live.open(await accept(), info);
      const limit = code === CLOSE_UNAUTHORIZED || code === 3009;
      closeWithError(session, code, reason, !limit && (opts.errorFrames ?? true));
    };

    const cred = authenticate(req, url.searchParams, keys, tokens);
    if ('why' in cred) return refuse(opts.authFailure ?? 'close', 401, CLOSE_UNAUTHORIZED, unauthorized(cred.why));
    const key = cred.key;
    info.key = key;
    const parsed = parseParams(url.searchParams, opts.requireSpeechModel ?? true);
    if ('problems' in parsed) return refuse(opts.invalidParams ?? 'close', 400, CLOSE_INVALID, `Invalid Message: ${parsed.problems.join('; ')}`);

    // §3.8 limits (new sessions per rolling minute, concurrent sessions per key) and the recogniser pool.
    const now = Date.now();
    const recent = (starts.get(key) ?? []).filter((t) => now - t < 60_000);
    starts.set(key, recent);
    const limitCode = opts.tooManySessionsCode ?? CLOSE_UNAUTHORIZED;
    const admitted = await live.admit(
      key,
      {
        tooMany: () => refuse('close', 429, limitCode, TOO_MANY_SESSIONS_REASON),
        serverError: (status) => (status !== undefined ? refuse('http', status, CLOSE_CANCELLED, CANCELLED_REASON) : refuse('close', 500, CLOSE_CANCELLED, CANCELLED_REASON)),
      },
      () => recent.length >= (opts.newSessionsPerMinute ?? 100),
    );
    if (!admitted) return;
    recent.push(now);

    const session = await live.accept(accept, info, admitted);
    const maxSessionSeconds = cred.maxSessionSeconds ?? opts.maxSessionSeconds ?? 3 * 3600;
    if (admitted.hit?.kind === 'never-answer') return neverAnswer(session, info, maxSessionSeconds);
    const faults = takeSessionFaults(live.faults);
    if (faults.closeBeforeBegin !== undefined) return closeWithError(session, faults.closeBeforeBegin, CANCELLED_REASON, false);
    const hit = admitted.hit;
    runSession(session, info, { ...parsed.params, maxSessionSeconds, faults, ...(hit?.kind === 'drop-after' ? { dropInMs: msUntil(info.openedAt, hit.seconds ?? 0) } : {}) }, opts);
  };

  await live.listen(onUpgrade, (req, res) => tokens.serve(req, res, keys));
  return live.handle({ issueToken: (key: string, expiresInSeconds?: number, maxSessionSeconds?: number) => tokens.issue(key, expiresInSeconds, maxSessionSeconds) });
}

/** Accepted (Begin), then silence: audio is taken and logged, nothing else is ever sent. */
function neverAnswer(session: LiveSession, info: AssemblyAISessionInfo, maxSessionSeconds: number): void {
  session.listen(
    () => {},
    (raw) => session.record('in', 'text', raw.length),
  );
  sendBegin(session, info, maxSessionSeconds);
}
