/**
 * One AssemblyAI v3 session after `Begin`: audio frames checked (§3.3 50–1000 ms, §3.7 real-time rate →
 * 3007) and fed to the endpointed recogniser (Turns at each endpoint, turns.ts), the text frames (§3.3
 * Terminate, ForceEndpoint, KeepAlive, UpdateConfiguration; anything else → 3006), the session age limit
 * (3008), `inactivity_timeout`, and the Terminate → Turns → (SpeakerRevision) → Termination → 1000
 * handshake (§3.9), which finalises all audio received first. With `speaker_labels=true` the audio's
 * pitch is tracked for the Turns' speaker labels (speakers.ts).
 */
import { delay } from '../kit';
import { LiveIngest } from '../live/ingest';
import type { LiveSession } from '../live/session';
import { RateMonitor } from '../kit';
import {
  CANCELLED_REASON,
  CLOSE_CANCELLED,
  CLOSE_EXPIRED,
  CLOSE_INPUT,
  CLOSE_INVALID,
  closeWithError,
  durationViolation,
  EXPIRED_REASON,
  rateExceeded,
} from './errors';
import type { SessionParams } from './handshake';
import type { AssemblyAIEmulatorOptions, AssemblyAIFaults, AssemblyAISessionInfo } from './options';
import { SpeakerLabels } from './speakers';
import { Turns, turnSilenceMs, type TurnDetection } from './turns';

export type SessionFaults = Pick<AssemblyAIFaults, 'dropAfterAudioMs' | 'cancelAfterAudioMs' | 'closeBeforeBegin' | 'onTerminate'>;

/** Session-level faults apply to the next session only: taken off the hooks here. */
export function takeSessionFaults(f: AssemblyAIFaults): SessionFaults {
  const taken: SessionFaults = {};
  for (const k of ['dropAfterAudioMs', 'cancelAfterAudioMs', 'closeBeforeBegin', 'onTerminate'] as const) {
    if (f[k] !== undefined) Object.assign(taken, { [k]: f[k] });
    delete f[k];
  }
  return taken;
}

/** `Begin` (§3.4): the session id and `expires_at` = now + the session age limit, in Unix seconds. */
export function sendBegin(session: LiveSession, info: AssemblyAISessionInfo, maxSessionSeconds: number): void {
  session.send({ type: 'Begin', id: info.id, expires_at: Math.floor(Date.now() / 1000) + maxSessionSeconds }, 'Begin');
  info.began = true;
}

export interface RunParams extends SessionParams {
  maxSessionSeconds: number;
  faults: SessionFaults;
  /** `drop-after`: destroy the socket this many ms from now. */
  dropInMs?: number;
}

export function runSession(session: LiveSession, info: AssemblyAISessionInfo, p: RunParams, opts: AssemblyAIEmulatorOptions): void {
  const detection: TurnDetection = { threshold: p.threshold, minSilenceMs: p.minSilenceMs, maxSilenceMs: p.maxSilenceMs };
  const bytesPerSample = p.encoding === 'pcm_mulaw' ? 1 : 2;
  const rate = new RateMonitor();
  const speakers = p.speakerLabels ? new SpeakerLabels(p.maxSpeakers) : undefined;
  const turns = new Turns(session, info, { formatTurns: p.formatTurns, legacyDouble: opts.legacyDoubleFormattedTurn ?? false }, speakers);
  let terminating = false;

  const fail = (code: number, reason: string) => closeWithError(session, code, reason, opts.errorFrames ?? true);

  const ingest = new LiveIngest({
    sampleRate: p.sampleRate,
    encoding: p.encoding,
    partialMs: opts.partialMs ?? 200,
    pauseMs: turnSilenceMs(detection),
    ...(opts.maxSegmentMs !== undefined ? { maxSegmentMs: opts.maxSegmentMs } : {}),
    onPartial: (text, audioEnd) => turns.partial(text, audioEnd),
    onFinal: (u) => turns.final(u),
    onEndpoint: (_kind, at) => turns.end(at),
    onError: () => fail(CLOSE_CANCELLED, CANCELLED_REASON),
    ...(speakers ? { onPcm: (pcm: Buffer) => speakers.push(pcm) } : {}),
  });
  session.onFinish(() => ingest.kill());

  /** §3.9: Terminate → remaining Turns (all audio received finalised) → (SpeakerRevision) → Termination → close 1000. */
  const terminate = async () => {
    if (terminating || session.ended) return;
    terminating = true;
    if (opts.serviceTimeMs) await delay(opts.serviceTimeMs);
    if (session.ended) return;
    await ingest.end();
    if (session.ended) return;
    turns.end();
    turns.revise();
    const sessionSeconds = (performance.now() - info.openedAt) / 1000;
    session.send(
      { type: 'Termination', audio_duration_seconds: Math.round(info.audioSeconds), session_duration_seconds: Math.round(sessionSeconds) },
      'Termination',
    );
    info.terminationSent = true;
    session.close(1000);
  };

  // Timers: session age (§3.8), inactivity (§3.2: closes after a Termination unless configured), drop-after.
  session.after(p.maxSessionSeconds * 1000, () => fail(CLOSE_EXPIRED, EXPIRED_REASON));
  const idleCode = opts.inactivityCloseCode ?? 1000;
  const onIdle = () => (idleCode === 1000 ? void terminate() : fail(idleCode, 'Session idle for too long'));
  const touch = p.inactivitySeconds === undefined ? () => {} : session.restartable(p.inactivitySeconds * 1000, onIdle);
  if (p.dropInMs !== undefined) session.after(p.dropInMs, () => session.drop());

  const onAudio = (data: Buffer) => {
    if (terminating) return;
    const frameMs = (data.length / bytesPerSample / p.sampleRate) * 1000;
    // §3.3: every frame must hold 50–1000 ms of audio.
    if ((opts.strictFrameDuration ?? true) && (frameMs < 50 || frameMs > 1000)) return fail(CLOSE_INPUT, durationViolation(frameMs));
    // §3.7: faster than real time → 3007 Audio Transmission Rate Exceeded.
    const r = rate.add(frameMs / 1000);
    if ((opts.strictRate ?? true) && r.aheadSeconds > (opts.rateAllowanceSeconds ?? 5)) return fail(CLOSE_INPUT, rateExceeded(r.audioSeconds, r.elapsedSeconds));
    info.audioSeconds = r.audioSeconds;
    ingest.write(data);
    const audioMs = r.audioSeconds * 1000;
    if (p.faults.dropAfterAudioMs !== undefined && audioMs >= p.faults.dropAfterAudioMs) return session.drop();
    if (p.faults.cancelAfterAudioMs !== undefined && audioMs >= p.faults.cancelAfterAudioMs) fail(CLOSE_CANCELLED, CANCELLED_REASON);
  };

  const control = (m: Record<string, unknown>, type: string) => {
    switch (type) {
      case 'Terminate':
        info.terminateReceived = true;
        if (p.faults.onTerminate === 'ignore') return;
        if (p.faults.onTerminate === 'drop') return session.drop();
        return void terminate();
      case 'ForceEndpoint': {
        // §3.3: end the open turn now — everything heard so far becomes final.
        const at = ingest.audioSeconds;
        return void ingest.cut(() => turns.end(at));
      }
      case 'KeepAlive':
        return; // resets inactivity (done for every frame); no reply
      case 'UpdateConfiguration': {
        // Silently applied, no acknowledgement (§3.3); the new silences apply to the audio to come.
        const num = (k: string) => (typeof m[k] === 'number' ? (m[k] as number) : undefined);
        detection.threshold = num('end_of_turn_confidence_threshold') ?? detection.threshold;
        detection.minSilenceMs = num('min_turn_silence') ?? num('min_end_of_turn_silence_when_confident') ?? detection.minSilenceMs;
        detection.maxSilenceMs = num('max_turn_silence') ?? detection.maxSilenceMs;
        ingest.configure(turnSilenceMs(detection));
        if (typeof m.format_turns === 'boolean') turns.style.formatTurns = m.format_turns;
        return;
      }
      default:
        return fail(CLOSE_INVALID, `Invalid Message Type: ${type.slice(0, 60)}`);
    }
  };

  const onText = (raw: string) => {
    let msg: unknown;
    try {
      msg = JSON.parse(raw);
    } catch {
      session.record('in', 'text', raw.length, 'invalid-json');
      return fail(CLOSE_INVALID, `Invalid JSON: ${raw.slice(0, 60)}`);
    }
    // A non-object, or an object without a string `type` (e.g. v2's {"terminate_session": true}).
    const m = msg as Record<string, unknown>;
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg) || typeof m.type !== 'string') {
      session.record('in', 'text', raw.length, 'invalid');
      return fail(CLOSE_INVALID, `Invalid Message: ${raw.slice(0, 60)}`);
    }
    session.record('in', 'text', raw.length, m.type);
    if (!terminating) control(m, m.type);
  };

  session.listen(onAudio, onText, () => touch());
  sendBegin(session, info, p.maxSessionSeconds);
  touch();
}
