/**
 * Fireworks streaming ASR emulator (providers.md §4, checklist §7.5): `/v1/audio/transcriptions/streaming`
 * with the raw key in `Authorization` (header or query parameter; else HTTP 401 at the upgrade), a per-key
 * concurrency cap (429 at the upgrade), 16 kHz mono s16le audio with the 50–400 ms / whole-sample frame
 * rules (warn by default, close in strict mode), a real-time pacing check, verbose_json transcription
 * messages on the state-dict model (later messages revise earlier segment ids; ids sometimes strings),
 * the `checkpoint_id` / `stt.input.trace` / `stt.state.clear` control messages, no server-side close,
 * and fault hooks (including a close before the final echo).
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
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import type { Word } from '@scribe-fleet/core';
import {
  ConcurrencyTracker,
  delay,
  FaultPlan,
  FrameLog,
  handleControlRequest,
  msUntil,
  punctuate,
  type EmulatorHandle,
  type FaultHooks,
  type FaultSpec,
} from './common';
import {
  applyHandshakeFaults,
  closeReason,
  FlushableRecogniser,
  PcmConverter,
  queryList,
  RateMonitor,
  refuseUpgrade,
  remember,
  round3,
  startWsServer,
  type RecognisedUtterance,
  type TlsOptions,
} from './streaming-support';

export const FIREWORKS_WS_PATH = '/v1/audio/transcriptions/streaming';

export interface FireworksFaults extends FaultHooks {
  /** When the next session asks for the final checkpoint/trace, close with this code instead of echoing. */
  closeBeforeFinalEcho?: number;
  /** The next session never answers the final checkpoint/trace. */
  ignoreFinal?: boolean;
}

export interface FireworksEmulatorOptions {
  apiKeys: string[];
  port?: number;
  host?: string;
  tls?: TlsOptions;
  /** Concurrent streams per key (UNCONFIRMED; one guide claims 50 serverless). Over it: 429 at the upgrade. */
  maxConcurrentPerKey?: number | ((key: string) => number);
  /** Retry-After (seconds) on the 429. Default 1. */
  retryAfterSeconds?: number;
  /** Close (1008) on frames that are not whole samples or outside 50–400 ms. Default false: record a warning (§7.5). */
  strictFrames?: boolean;
  /** Close (1008) when audio runs ahead of wall time by more than `rateAllowanceSeconds`. Default true. */
  strictPacing?: boolean;
  rateAllowanceSeconds?: number;
  /** Segment ids on the wire: numbers, strings, or alternating (default) to exercise normalisation. */
  idMode?: 'number' | 'string' | 'mixed';
  /** Re-send finished segments later with revised (punctuated) text under the same id. Default true. */
  reviseEarlier?: boolean;
  /** Recogniser partial period in ms of audio (default 300). */
  partialMs?: number;
  /** Scripted faults (`--fault` grammar, common.ts); switchable at run time via `faultPlan` or `/_emulator/faults`. */
  faultSpecs?: ReadonlyArray<string | FaultSpec>;
  /** Delay before the answer to the final checkpoint/trace, ms (a slow finalisation). */
  serviceTimeMs?: number;
}

export interface FireworksViolation {
  session: string;
  rule: 'frame-not-whole-samples' | 'frame-duration' | 'too-fast' | 'invalid-message' | 'closed-without-final' | 'audio-after-final';
  detail: string;
}

export interface FireworksSessionInfo {
  id: string;
  key: string;
  query: Record<string, string>;
  openedAt: number;
  closedAt?: number;
  closeCode?: number;
  closeReason?: string;
  /** Who closed: the emulator (strict rule or fault) or the client. */
  closedBy?: 'server' | 'client';
  audioSeconds: number;
  checkpoints: string[];
  /** The final checkpoint/trace was echoed. */
  finalEchoed: boolean;
  messagesSent: number;
  /** Finished segments re-sent later with revised text under the same id. */
  revisionsSent: number;
}

export interface FireworksEmulatorHandle extends EmulatorHandle {
  faults: FireworksFaults;
  /** ws(s)://127.0.0.1:port — the client's base URL. */
  readonly wsUrl: string;
  /** Emits 'session-open' and 'session-closed' with a FireworksSessionInfo. */
  readonly events: EventEmitter;
  sessions(): FireworksSessionInfo[];
  /** Every rule a client broke (recorded in warn and strict mode alike). */
  violations(session?: string): FireworksViolation[];
}

interface FwWord {
  word: string;
  language: string;
  probability: number;
  hallucination_score: number;
  is_final: boolean;
  start?: number;
  end?: number;
}

interface SegmentState {
  id: number;
  text: string;
  words: Array<{ word: string; start: number; end: number; probability: number; is_final: boolean }>;
  final: boolean;
  revised: boolean;
}

const isFinalId = (id: unknown) => id === 'final';

export async function startFireworksEmulator(opts: FireworksEmulatorOptions): Promise<FireworksEmulatorHandle> {
  const keys = new Set(opts.apiKeys);
  const capOpt = opts.maxConcurrentPerKey ?? 50;
  const concurrency = new ConcurrencyTracker(typeof capOpt === 'function' ? capOpt : () => capOpt);
  const frames = new FrameLog();
  const events = new EventEmitter();
  const sessions = new Map<string, FireworksSessionInfo>();
  const violations: FireworksViolation[] = [];
  const handle = { faults: {} as FireworksFaults };
  const faultPlan = new FaultPlan(['ws'], opts.faultSpecs ?? []);

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    if (handleControlRequest(req, res, { provider: 'fireworks', concurrency, faultPlan })) return;
    req.resume();
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'Not Found' }));
  };

  const onUpgrade = async (req: IncomingMessage, socket: Duplex, accept: () => Promise<WebSocket>) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== FIREWORKS_WS_PATH) return refuseUpgrade(socket, 404, { error: { message: 'Not Found', code: 404 } });
    if (await applyHandshakeFaults(handle.faults, socket)) return;
    const id = randomUUID();
    // §4.1: the raw key in the Authorization header, or as the `Authorization` query parameter.
    const key = req.headers.authorization ?? url.searchParams.get('Authorization') ?? '';
    if (!keys.has(key)) {
      frames.record({ session: id, direction: 'out', kind: 'http', size: 0, type: '401' });
      return refuseUpgrade(socket, 401, { error: { message: 'Invalid API key', code: 401 } });
    }
    const tooMany = () => {
      frames.record({ session: id, direction: 'out', kind: 'http', size: 0, type: '429' });
      refuseUpgrade(
        socket,
        429,
        { error: { message: 'Too many concurrent streaming sessions', code: 429 } },
        { 'Retry-After': String(opts.retryAfterSeconds ?? 1) },
      );
    };
    const hit = faultPlan.take('ws');
    if (hit?.kind === '429-storm') {
      concurrency.noteRefusal(key);
      return tooMany();
    }
    if (hit?.kind === '5xx') {
      const status = hit.status ?? 503;
      frames.record({ session: id, direction: 'out', kind: 'http', size: 0, type: String(status) });
      return refuseUpgrade(socket, status, { error: { message: status === 503 ? 'Service Unavailable' : 'Internal Server Error', code: status } });
    }
    if (!concurrency.enter(key)) {
      hit?.refund();
      return tooMany();
    }
    let ws: WebSocket;
    try {
      ws = await accept();
    } catch (e) {
      concurrency.leave(key);
      throw e;
    }
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
    const granularities = new Set(queryList(url.searchParams, 'timestamp_granularities').concat(queryList(url.searchParams, 'timestamp_granularities[]')));
    remember(sessions, info);
    ws.once('close', (code: number, reason: Buffer) => {
      concurrency.leave(key);
      info.closedAt = performance.now();
      info.closeCode = code;
      info.closeReason = reason.toString();
      info.closedBy ??= 'client';
      events.emit('session-closed', info);
    });
    events.emit('session-open', info);
    if (hit?.kind === 'never-answer') {
      // Accepted, then silence: audio is taken and logged, nothing is ever sent.
      ws.on('error', () => {});
      ws.on('message', (data: RawData, isBinary: boolean) => {
        const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
        frames.record({ session: info.id, direction: 'in', kind: isBinary ? 'binary' : 'text', size: buf.length });
        if (isBinary) info.audioSeconds += buf.length / 32_000;
      });
      return;
    }
    const faults: FireworksFaults = { ...handle.faults };
    delete handle.faults.dropAfterAudioMs;
    delete handle.faults.closeBeforeFinalEcho;
    delete handle.faults.ignoreFinal;
    runSession(ws, info, {
      language: url.searchParams.get('language') ?? 'en',
      wordTimes: granularities.has('word'),
      segmentTimes: granularities.has('segment'),
      faults,
      ...(hit?.kind === 'drop-after' ? { dropInMs: msUntil(info.openedAt, hit.seconds ?? 0) } : {}),
    });
  };

  const runSession = (
    ws: WebSocket,
    info: FireworksSessionInfo,
    p: { language: string; wordTimes: boolean; segmentTimes: boolean; faults: FireworksFaults; dropInMs?: number },
  ) => {
    const rate = new RateMonitor();
    const converter = new PcmConverter(16_000, 'pcm_s16le'); // carries an odd byte across frames
    const segments = new Map<number, SegmentState>();
    let nextId = 0;
    let current: SegmentState | undefined; // the utterance in progress
    let closed = false;
    let finalRequested = false;
    let unflushedAudio = false;
    let control: Promise<void> = Promise.resolve(); // control messages are answered in order

    const violate = (rule: FireworksViolation['rule'], detail: string) => violations.push({ session: info.id, rule, detail });

    const send = (msg: Record<string, unknown>, type: string) => {
      if (closed || ws.readyState !== ws.OPEN) return;
      const text = JSON.stringify(msg);
      info.messagesSent += 1;
      frames.record({ session: info.id, direction: 'out', kind: 'text', size: text.length, type });
      ws.send(text);
    };

    const serverClose = (code: number, reason: string) => {
      if (closed) return;
      info.closedBy = 'server';
      closed = true;
      recogniser.kill();
      ws.close(code, closeReason(reason));
    };

    // ids on the wire: the reference says number, examples show strings (§4.4).
    const wireId = (id: number): number | string => {
      const mode = opts.idMode ?? 'mixed';
      return mode === 'string' || (mode === 'mixed' && id % 2 === 0) ? String(id) : id;
    };

    const wireSegment = (s: SegmentState) => {
      const texts = s.revised ? punctuate(s.words.map((w) => w.word)) : s.words.map((w) => w.word);
      const words: FwWord[] = s.words.map((w, i) => ({
        word: texts[i]!,
        language: p.language,
        probability: w.probability,
        hallucination_score: 0.01,
        is_final: w.is_final,
        ...(p.wordTimes ? { start: w.start, end: w.end } : {}),
      }));
      const seg: Record<string, unknown> = { id: wireId(s.id), text: s.revised ? texts.join(' ') : s.text, words };
      if (p.segmentTimes && s.words.length) {
        seg.start = s.words[0]!.start;
        seg.end = s.words[s.words.length - 1]!.end;
      }
      return { seg, words };
    };

    /** A verbose_json message carrying `changed` segments; `text` is the whole transcript so far. */
    const emit = (changed: SegmentState[]) => {
      if (changed.length === 0) return;
      const all = [...segments.values()].sort((a, b) => a.id - b.id);
      const parts = changed.map(wireSegment);
      send(
        {
          task: 'transcribe',
          language: p.language,
          text: all.map((s) => (s.revised ? punctuate(s.words.map((w) => w.word)).join(' ') : s.text)).filter(Boolean).join(' '),
          words: parts.flatMap((x) => x.words),
          segments: parts.map((x) => x.seg),
        },
        'transcription',
      );
    };

    /** Finished segments not yet revised get their revised text now (same id, §4.4). */
    const reviseFinished = (except?: SegmentState): SegmentState[] => {
      if (!(opts.reviseEarlier ?? true)) return [];
      const out: SegmentState[] = [];
      for (const s of segments.values()) {
        if (s.final && !s.revised && s !== except) {
          s.revised = true;
          info.revisionsSent += 1;
          out.push(s);
        }
      }
      return out;
    };

    const onPartial = (text: string, audioEnd: number) => {
      const words = text.split(/\s+/).filter(Boolean);
      if (words.length === 0 || closed) return;
      const starting = !current;
      if (!current) {
        current = { id: nextId++, text: '', words: [], final: false, revised: false };
        segments.set(current.id, current);
      }
      if (current.text === words.join(' ')) return;
      const prev = current.words.map((w) => w.word);
      let stable = 0;
      while (stable < words.length - 1 && stable < prev.length && words[stable] === prev[stable]) stable += 1;
      const lastEnd = [...segments.values()].filter((s) => s.final).reduce((m, s) => Math.max(m, s.words.at(-1)?.end ?? 0), 0);
      const step = Math.max(0.05, (audioEnd - lastEnd) / words.length);
      current.words = words.map((w, i) => ({
        word: w,
        start: round3(lastEnd + i * step),
        end: round3(lastEnd + (i + 1) * step),
        probability: 0.5,
        is_final: i < stable, // flips to true once stable
      }));
      current.text = words.join(' ');
      // A new segment starting is when earlier ones get revised.
      emit([...(starting ? reviseFinished(current) : []), current]);
    };

    const onFinal = (u: RecognisedUtterance) => {
      if (closed || u.words.length === 0) return;
      const seg = current ?? { id: nextId++, text: '', words: [], final: false, revised: false };
      segments.set(seg.id, seg);
      current = undefined;
      seg.words = u.words.map((w: Word) => ({ word: w.word, start: w.start, end: w.end, probability: w.confidence, is_final: true }));
      seg.text = seg.words.map((w) => w.word).join(' ');
      seg.final = true;
      emit([seg]);
    };

    const recogniser = new FlushableRecogniser({
      partialMs: opts.partialMs ?? 300,
      onPartial,
      onFinal,
      onError: () => serverClose(1011, 'internal error'),
    });

    /** Flush all audio received so far into final segments, revise them, then send `reply`. */
    const flushThen = (isFinal: boolean, reply: Record<string, unknown>, type: string) => {
      control = control.then(async () => {
        if (isFinal) {
          finalRequested = true;
          if (p.faults.closeBeforeFinalEcho !== undefined) return serverClose(p.faults.closeBeforeFinalEcho, 'stream interrupted');
          if (p.faults.ignoreFinal) return;
          if (opts.serviceTimeMs) await delay(opts.serviceTimeMs);
          if (closed) return;
        }
        await recogniser.flush();
        if (closed) return;
        if (current && current.words.length) {
          // A hypothesis the recogniser dropped at the flush: keep it as a final segment.
          current.final = true;
          current.words.forEach((w) => (w.is_final = true));
          emit([current]);
        }
        current = undefined;
        emit(reviseFinished());
        unflushedAudio = false;
        send(reply, type);
        if (isFinal) info.finalEchoed = true;
      });
    };

    const onAudio = (data: Buffer) => {
      if (finalRequested) violate('audio-after-final', `${data.length} bytes after the final checkpoint`);
      const frameMs = data.length / 32;
      const problems: Array<[FireworksViolation['rule'], string]> = [];
      if (data.length % 2 !== 0) problems.push(['frame-not-whole-samples', `${data.length} bytes is not a whole number of 16-bit samples`]);
      if (frameMs < 50 || frameMs > 400) problems.push(['frame-duration', `${frameMs} ms frame; expected 50–400 ms`]);
      for (const [rule, detail] of problems) violate(rule, detail);
      if (problems.length && opts.strictFrames) return serverClose(1008, `Invalid audio chunk: ${problems.map((x) => x[1]).join('; ')}`);
      const r = rate.add(frameMs / 1000);
      if (r.aheadSeconds > (opts.rateAllowanceSeconds ?? 5)) {
        const detail = `received ${r.audioSeconds.toFixed(1)} s of audio in ${r.elapsedSeconds.toFixed(2)} s`;
        violate('too-fast', detail);
        if (opts.strictPacing ?? true) return serverClose(1008, `Audio sent faster than real time: ${detail}`);
      }
      info.audioSeconds = r.audioSeconds;
      unflushedAudio = true;
      recogniser.write(converter.convert(data));
      if (p.faults.dropAfterAudioMs !== undefined && r.audioSeconds * 1000 >= p.faults.dropAfterAudioMs) {
        closed = true;
        info.closedBy = 'server';
        recogniser.kill();
        ws.terminate();
      }
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
      frames.record({ session: info.id, direction: 'in', kind: 'text', size: raw.length, type });
      if (!msg) return violate('invalid-message', `not a JSON object: ${raw.slice(0, 60)}`);
      const eventId = () => `evt_${randomUUID().replace(/-/g, '').slice(0, 20)}`;
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
        control = control.then(() => {
          recogniser.reset();
          if (current) segments.delete(current.id);
          current = undefined;
          send({ event_id: eventId(), object: 'stt.state.cleared', reset_id: msg.reset_id }, 'stt.state.cleared');
        });
        return;
      }
      violate('invalid-message', `unknown message: ${raw.slice(0, 60)}`);
    };

    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (closed) return;
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      if (isBinary) {
        frames.record({ session: info.id, direction: 'in', kind: 'binary', size: buf.length });
        onAudio(buf);
      } else onText(buf.toString('utf8'));
    });
    ws.on('error', () => {});
    // `drop-after=S`: destroy the socket (no close frame: the client sees 1006).
    const dropTimer =
      p.dropInMs !== undefined
        ? setTimeout(() => {
            if (closed) return;
            closed = true;
            info.closedBy = 'server';
            recogniser.kill();
            ws.terminate();
          }, p.dropInMs)
        : undefined;
    ws.once('close', () => {
      clearTimeout(dropTimer);
      if (!closed && (unflushedAudio || !info.finalEchoed)) violate('closed-without-final', 'the client closed before the final checkpoint/trace echo');
      closed = true;
      recogniser.kill();
    });
  };

  const srv = await startWsServer({
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    ...(opts.host !== undefined ? { host: opts.host } : {}),
    ...(opts.tls ? { tls: opts.tls } : {}),
    onRequest,
    onUpgrade,
  });

  return {
    name: 'fireworks',
    url: srv.url,
    wsUrl: srv.url.replace(/^http/, 'ws'),
    port: srv.port,
    concurrency,
    frames,
    events,
    get faults() {
      return handle.faults;
    },
    set faults(f: FireworksFaults) {
      handle.faults = f;
    },
    faultPlan,
    sessions: () => [...sessions.values()],
    violations: (session?: string) => violations.filter((v) => !session || v.session === session),
    close: () => srv.close(),
  };
}
