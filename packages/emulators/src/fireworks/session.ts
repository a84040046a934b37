/**
 * One Fireworks streaming session: 16 kHz mono s16le frames checked against the guide's rules (whole
 * samples, 50–400 ms: a warning by default, close 1008 with `strictFrames`; audio ahead of real time:
 * close 1008 unless `strictPacing` is off), fed to the endpointed recogniser (segments finalise at each
 * endpoint, segments.ts), and the control messages (§4.5): `{"checkpoint_id": X}` and `stt.input.trace`
 * → all audio before it finalised, then the echo; `stt.state.clear` → `stt.state.cleared`. The server
 * never closes on its own (the client closes after the final echo); a close without it is flagged.
 */
import { randomUUID } from 'node:crypto';
import { delay } from '../kit';
import { LiveIngest } from '../live/ingest';
import type { LiveSession } from '../live/session';
import { RateMonitor } from '../kit';
import type { FireworksEmulatorOptions, FireworksFaults, FireworksSessionInfo, FireworksViolation } from './options';
import { Segments, type SegmentStyle } from './segments';

export type Violate = (rule: FireworksViolation['rule'], detail: string) => void;

export interface RunParams {
  style: SegmentStyle;
  faults: FireworksFaults;
  /** `drop-after`: destroy the socket this many ms from now. */
  dropInMs?: number;
}

/** Session-level faults apply to the next session only: taken off the hooks here. */
export function takeSessionFaults(f: FireworksFaults): FireworksFaults {
  const taken: FireworksFaults = { ...f };
  delete f.dropAfterAudioMs;
  delete f.closeBeforeFinalEcho;
  delete f.ignoreFinal;
  return taken;
}

const isFinalId = (id: unknown) => id === 'final';
const eventId = () => `evt_${randomUUID().replace(/-/g, '').slice(0, 20)}`;

export function runSession(session: LiveSession, info: FireworksSessionInfo, p: RunParams, opts: FireworksEmulatorOptions, violate: Violate): void {
  const rate = new RateMonitor();
  let finalRequested = false;
  let framesIn = 0; // audio frames received, and how many of them the last checkpoint/trace finalised
  let framesFlushed = 0;
  let control: Promise<void> = Promise.resolve(); // control messages are answered in order

  const send = (msg: Record<string, unknown>, type: string) => {
    if (session.send(msg, type)) info.messagesSent += 1;
  };
  const segments = new Segments(p.style, (msg) => {
    send(msg, 'transcription');
    info.revisionsSent = segments.revisions;
  });
  const ingest = new LiveIngest({
    sampleRate: 16_000,
    encoding: 'pcm_s16le', // the converter carries an odd byte across frames
    partialMs: opts.partialMs ?? 300,
    pauseMs: opts.pauseMs ?? 500,
    ...(opts.maxSegmentMs !== undefined ? { maxSegmentMs: opts.maxSegmentMs } : {}),
    onPartial: (text, audioEnd) => segments.partial(text, audioEnd),
    onFinal: (u) => segments.final(u),
    onEndpoint: (_kind, at) => segments.settle(at),
    onError: () => session.close(1011, 'internal error'),
  });
  session.onFinish(() => ingest.kill());

  /** Finalise all audio received so far (revising finished segments), then send `reply`. */
  const flushThen = (isFinal: boolean, reply: Record<string, unknown>, type: string) => {
    control = control.then(async () => {
      if (isFinal) {
        finalRequested = true;
        if (p.faults.closeBeforeFinalEcho !== undefined) return session.close(p.faults.closeBeforeFinalEcho, 'stream interrupted');
        if (p.faults.ignoreFinal) return;
        if (opts.serviceTimeMs) await delay(opts.serviceTimeMs);
        if (session.ended) return;
      }
      const at = ingest.audioSeconds;
      const upTo = framesIn;
      await ingest.cut(() => {
        segments.settle(at);
        segments.reviseFinished();
        framesFlushed = Math.max(framesFlushed, upTo);
        send(reply, type);
        if (isFinal && !session.ended) info.finalEchoed = true;
      });
    });
  };

  const onAudio = (data: Buffer) => {
    if (finalRequested) violate('audio-after-final', `${data.length} bytes after the final checkpoint`);
    const frameMs = data.length / 32;
    const problems: Array<[FireworksViolation['rule'], string]> = [];
    if (data.length % 2 !== 0) problems.push(['frame-not-whole-samples', `${data.length} bytes is not a whole number of 16-bit samples`]);
    if (frameMs < 50 || frameMs > 400) problems.push(['frame-duration', `${frameMs} ms frame; expected 50–400 ms`]);
    for (const [rule, detail] of problems) violate(rule, detail);
    if (problems.length && opts.strictFrames) return session.close(1008, `Invalid audio chunk: ${problems.map((x) => x[1]).join('; ')}`);
    const r = rate.add(frameMs / 1000);
    if (r.aheadSeconds > (opts.rateAllowanceSeconds ?? 5)) {
      const detail = `received ${r.audioSeconds.toFixed(1)} s of audio in ${r.elapsedSeconds.toFixed(2)} s`;
      violate('too-fast', detail);
      if (opts.strictPacing ?? true) return session.close(1008, `Audio sent faster than real time: ${detail}`);
    }
    info.audioSeconds = r.audioSeconds;
    framesIn += 1;
    ingest.write(data);
    if (p.faults.dropAfterAudioMs !== undefined && r.audioSeconds * 1000 >= p.faults.dropAfterAudioMs) session.drop();
  };

  const onText = (raw: string) => {
    let msg: Record<string, unknown> | null = null;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) msg = parsed as Record<string, unknown>;
    } catch {
      /* recorded below */
    }
    const type = msg ? (typeof msg.object === 'string' ? msg.object : 'checkpoint_id' in msg ? 'checkpoint' : 'unknown') : 'invalid';
    session.record('in', 'text', raw.length, type);
    if (!msg) return violate('invalid-message', `not a JSON object: ${raw.slice(0, 60)}`);
    if ('checkpoint_id' in msg) {
      // §4.5: after all prior audio is processed, a message containing the same checkpoint_id.
      const cp = msg.checkpoint_id;
      info.checkpoints.push(String(cp));
      return flushThen(isFinalId(cp), { checkpoint_id: cp }, 'checkpoint');
    }
    if (msg.object === 'stt.input.trace') {
      info.checkpoints.push(`trace:${String(msg.trace_id)}`);
      return flushThen(isFinalId(msg.trace_id), { event_id: eventId(), object: 'stt.output.trace', trace_id: msg.trace_id }, 'stt.output.trace');
    }
    if (msg.object === 'stt.state.clear') {
      const resetId = msg.reset_id;
      control = control.then(() => {
        ingest.reset();
        segments.clear();
        send({ event_id: eventId(), object: 'stt.state.cleared', reset_id: resetId }, 'stt.state.cleared');
      });
      return;
    }
    violate('invalid-message', `unknown message: ${raw.slice(0, 60)}`);
  };

  session.listen(onAudio, onText);
  if (p.dropInMs !== undefined) session.after(p.dropInMs, () => session.drop());
  session.onClosed(() => {
    if (!session.endedByServer && (framesIn > framesFlushed || !info.finalEchoed)) {
      violate('closed-without-final', 'the client closed before the final checkpoint/trace echo');
    }
  });
}
