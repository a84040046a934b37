/**
 * Fireworks streaming ASR emulator (providers.md §4, checklist §7.5): `/v1/audio/transcriptions/streaming`
 * with the raw key in `Authorization` (header or query parameter; else HTTP 401 at the upgrade), a per-key
 * concurrency cap and the recogniser capacity (429 at the upgrade), 16 kHz mono s16le audio with the
 * 50–400 ms / whole-sample frame rules (warn by default, close in strict mode), a real-time pacing check,
 * verbose_json transcription messages on the state-dict model (later messages revise earlier segment ids;
 * ids are strings as in the guide) with segments finalised at endpoints, the `checkpoint_id` /
 * `stt.input.trace` / `stt.state.clear` control messages, no server-side close, and fault hooks
 * (including a close before the final echo).
 *
 * Scripted faults (`faultSpecs` / `--fault`, common.ts), on sessions with a valid key (§4.6 documents
 * no error answers; these follow the emulator's own handshake refusals): `429-storm` → HTTP 429 at the
 * upgrade with Retry-After (`retryAfterSeconds`, default 1) and `{"error":{"message","code":429}}`, the
 * same answer as the cap; `5xx[=S]` → HTTP S (default 503) at the upgrade; `never-answer` → upgrade,
 * audio accepted, nothing ever sent (no transcription, no checkpoint echo, no close); `drop-after=S` → a
 * normal session whose socket is destroyed S s after the upgrade (1006). `early=` does not apply.
 * `serviceTimeMs` delays the answer to the final checkpoint/trace by that many ms.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { msUntil } from '../kit';
import { LiveServer } from '../live/server';
import { applyHandshakeFaults, refuseUpgrade } from '../kit';
import { refuse, requestKey, segmentStyle, serverErrorMessage, TOO_MANY_MESSAGE } from './handshake';
import {
  FIREWORKS_WS_PATH,
  type FireworksEmulatorHandle,
  type FireworksEmulatorOptions,
  type FireworksFaults,
  type FireworksSessionInfo,
  type FireworksViolation,
} from './options';
import { runSession, takeSessionFaults } from './session';

export async function startFireworksEmulator(opts: FireworksEmulatorOptions): Promise<FireworksEmulatorHandle> {
  const keys = new Set(opts.apiKeys);
  const live = new LiveServer<FireworksFaults, FireworksSessionInfo>('fireworks', opts, 50);
  const violations: FireworksViolation[] = [];

  const onUpgrade = async (req: IncomingMessage, socket: Duplex, accept: () => Promise<WebSocket>) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== FIREWORKS_WS_PATH) return refuseUpgrade(socket, 404, { error: { message: 'Not Found', code: 404 } });
    if (await applyHandshakeFaults(live.faults, socket)) return;
    const id = randomUUID();
    const key = requestKey(req, url.searchParams);
    if (!keys.has(key)) return refuse(live.frames, id, socket, 401, 'Invalid API key');
    const admitted = await live.admit(key, {
      tooMany: () => refuse(live.frames, id, socket, 429, TOO_MANY_MESSAGE, { 'Retry-After': String(opts.retryAfterSeconds ?? 1) }),
      serverError: (status = 503) => refuse(live.frames, id, socket, status, serverErrorMessage(status)),
    });
    if (!admitted) return;
    const info: FireworksSessionInfo = {
      id,
      key,
      query: Object.fromEntries(url.searchParams),
      openedAt: performance.now(),
      audioSeconds: 0,
      checkpoints: [],
      finalEchoed: false,
      messagesSent: 0,
      revisionsSent: 0,
    };
    const session = await live.accept(accept, info, admitted);
    session.onClosed(() => (info.closedBy = session.endedByServer ? 'server' : 'client'));
    if (admitted.hit?.kind === 'never-answer') {
      // Accepted, then silence: audio is taken and logged, nothing is ever sent.
      return session.listen(
        (buf) => (info.audioSeconds += buf.length / 32_000),
        (raw) => session.record('in', 'text', raw.length),
      );
    }
    const hit = admitted.hit;
    const violate = (rule: FireworksViolation['rule'], detail: string) => violations.push({ session: id, rule, detail });
    const style = segmentStyle(url.searchParams, opts.reviseEarlier ?? true);
    const faults = takeSessionFaults(live.faults);
    runSession(session, info, { style, faults, ...(hit?.kind === 'drop-after' ? { dropInMs: msUntil(info.openedAt, hit.seconds ?? 0) } : {}) }, opts, violate);
  };

  await live.listen(onUpgrade);
  return live.handle({ violations: (session?: string) => violations.filter((v) => !session || v.session === session) });
}
