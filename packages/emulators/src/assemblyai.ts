/**
 * AssemblyAI Universal Streaming v3 emulator (providers.md §3, checklist §7.4): `wss://…/v3/ws` with the
 * real handshake, per-frame duration and real-time rate enforcement (close 3007), text-frame validation
 * (3006), Turn messages built from the local recogniser (word times in integer ms of audio time),
 * ForceEndpoint / UpdateConfiguration / KeepAlive / inactivity_timeout, the Terminate → Turns →
 * Termination → 1000 handshake, session age limit (3008), new-sessions-per-minute and per-key
 * concurrency limits (1008 / 3009), temporary tokens (`GET /v3/token`), and fault hooks.
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
  RateMonitor,
  refuseUpgrade,
  remember,
  startWsServer,
  type RecognisedUtterance,
  type TlsOptions,
} from './streaming-support';

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

export interface AssemblyAIEmulatorOptions {
  /** Valid API keys (raw, sent as `Authorization: <key>`). */
  apiKeys: string[];
  port?: number;
  host?: string;
  /** Serve wss/https (the official SDK refuses anything but `wss:`). */
  tls?: TlsOptions;
  /** Bad or missing credentials: accept the upgrade then close 1008 (default), or refuse it with HTTP 401. UNCONFIRMED which the service does. */
  authFailure?: 'close' | 'http';
  /** A missing/unknown `speech_model` or another invalid query parameter: Error + close 3006 (default) or HTTP 400 at the upgrade (UNCONFIRMED). */
  invalidParams?: 'close' | 'http';
  /** Refuse connections without `speech_model` (default true: current docs say the request fails). */
  requireSpeechModel?: boolean;
  /** Concurrent sessions per key; default unlimited (§3.8: paid accounts have no concurrency cap). */
  maxConcurrentPerKey?: number | ((key: string) => number);
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
  /** Recogniser partial period in ms of audio (default 200). */
  partialMs?: number;
  /** Scripted faults (`--fault` grammar, common.ts); switchable at run time via `faultPlan` or `/_emulator/faults`. */
  faultSpecs?: ReadonlyArray<string | FaultSpec>;
  /** Delay between Terminate and the remaining Turns → Termination, ms (a slow finalisation). */
  serviceTimeMs?: number;
}

export interface AssemblyAISessionInfo {
  id: string;
  key: string | null;
  query: Record<string, string>;
  openedAt: number;
  closedAt?: number;
  closeCode?: number;
  closeReason?: string;
  /** Whether `Begin` was sent. */
  began: boolean;
  /** Whether the client sent Terminate / the server sent Termination. */
  terminateReceived: boolean;
  terminationSent: boolean;
  audioSeconds: number;
  /** Turn messages sent, and how many of them had end_of_turn true. */
  turnsSent: number;
  endOfTurnsSent: number;
}

export interface AssemblyAIEmulatorHandle extends EmulatorHandle {
  faults: AssemblyAIFaults;
  /** ws(s)://127.0.0.1:port — the client's base URL (path /v3/ws is appended). */
  readonly wsUrl: string;
  /** Emits 'session-open' and 'session-closed' with an AssemblyAISessionInfo. */
  readonly events: EventEmitter;
  sessions(): AssemblyAISessionInfo[];
  /** Issue a temporary token as `GET /v3/token` would. */
  issueToken(key: string, expiresInSeconds?: number, maxSessionSeconds?: number): string;
}

interface TurnWord {
  text: string;
  start: number;
  end: number;
  confidence: number;
  word_is_final: boolean;
}

const ms = (seconds: number) => Math.round(seconds * 1000);

export async function startAssemblyAIEmulator(opts: AssemblyAIEmulatorOptions): Promise<AssemblyAIEmulatorHandle> {
  const keys = new Set(opts.apiKeys);
  const capOpt = opts.maxConcurrentPerKey ?? Infinity;
  const concurrency = new ConcurrencyTracker(typeof capOpt === 'function' ? capOpt : () => capOpt);
  const frames = new FrameLog();
  const events = new EventEmitter();
  const sessions = new Map<string, AssemblyAISessionInfo>();
  const starts = new Map<string, number[]>(); // key → session start times (rolling minute)
  const tokens = new Map<string, { key: string; expiresAt: number; maxSessionSeconds?: number }>();
  const handle = { faults: {} as AssemblyAIFaults };
  const faultPlan = new FaultPlan(['ws'], opts.faultSpecs ?? []);

  const issueToken = (key: string, expiresInSeconds = 60, maxSessionSeconds?: number): string => {
    const token = `tmp_${randomUUID().replace(/-/g, '')}`;
    tokens.set(token, { key, expiresAt: Date.now() + expiresInSeconds * 1000, ...(maxSessionSeconds ? { maxSessionSeconds } : {}) });
    return token;
  };

  // §3.1: GET /v3/token?expires_in_seconds=1..600[&max_session_duration_seconds=60..10800].
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    if (handleControlRequest(req, res, { provider: 'assemblyai', concurrency, faultPlan })) return;
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (url.pathname !== '/v3/token' || req.method !== 'GET') return json(404, { error: 'Not Found' });
    const key = req.headers.authorization;
    if (!key || !keys.has(key)) return json(401, { error: 'Invalid API key' });
    const expires = Number(url.searchParams.get('expires_in_seconds'));
    if (!Number.isInteger(expires) || expires < 1 || expires > 600) return json(400, { error: 'expires_in_seconds must be an integer between 1 and 600' });
    const maxRaw = url.searchParams.get('max_session_duration_seconds');
    const max = maxRaw === null ? undefined : Number(maxRaw);
    if (max !== undefined && (!Number.isInteger(max) || max < 60 || max > 10800)) {
      return json(400, { error: 'max_session_duration_seconds must be an integer between 60 and 10800' });
    }
    json(200, { token: issueToken(key, expires, max), expires_in_seconds: expires });
  };

  const onUpgrade = async (req: IncomingMessage, socket: Duplex, accept: () => Promise<WebSocket>) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== ASSEMBLYAI_WS_PATH) return refuseUpgrade(socket, 404, { error: 'Not Found' });
    if (await applyHandshakeFaults(handle.faults, socket)) return;
    const sessionId = randomUUID();
    const info: AssemblyAISessionInfo = {
      id: sessionId,
      key: null,
      query: Object.fromEntries(url.searchParams),
      openedAt: performance.now(),
      began: false,
      terminateReceived: false,
      terminationSent: false,
      audioSeconds: 0,
      turnsSent: 0,
      endOfTurnsSent: 0,
    };

    // ---- handshake checks: each failure refuses over HTTP or closes right after the upgrade ----
    const refuse = async (mode: 'close' | 'http', status: number, code: number, reason: string) => {
      if (mode === 'http') {
        frames.record({ session: sessionId, direction: 'out', kind: 'http', size: 0, type: String(status) });
        return refuseUpgrade(socket, status, { error: reason });
      }
      const ws = await accept();
      track(ws, info);
      closeSession(ws, info, code, reason, code !== 1008 && code !== 3009);
    };

    // §3.1 auth: raw key in Authorization, or a temporary token in ?token=.
    const header = req.headers.authorization;
    const token = url.searchParams.get('token');
    let maxSessionSeconds = opts.maxSessionSeconds ?? 3 * 3600;
    if (header && keys.has(header)) info.key = header;
    else if (token) {
      const t = tokens.get(token);
      if (t && t.expiresAt > Date.now()) {
        tokens.delete(token); // one session per token
        info.key = t.key;
        if (t.maxSessionSeconds) maxSessionSeconds = t.maxSessionSeconds;
      }
    }
    if (!info.key) {
      const why = !header && !token ? 'Missing Authorization header' : 'Invalid API key or token';
      return refuse(opts.authFailure ?? 'close', 401, 1008, `Unauthorized Connection: ${why}`);
    }

    // §3.2 query parameters.
    const q = url.searchParams;
    const problems: string[] = [];
    const model = q.get('speech_model');
    if (model === null) {
      if (opts.requireSpeechModel ?? true) problems.push('speech_model is required');
    } else if (!(ASSEMBLYAI_SPEECH_MODELS as readonly string[]).includes(model)) problems.push(`unknown speech_model ${model}`);
    const sampleRate = q.has('sample_rate') ? Number(q.get('sample_rate')) : 16000;
    if (!Number.isInteger(sampleRate) || sampleRate < 8000 || sampleRate > 48000) problems.push(`invalid sample_rate ${q.get('sample_rate')}`);
    const encoding = q.get('encoding') ?? 'pcm_s16le';
    if (encoding !== 'pcm_s16le' && encoding !== 'pcm_mulaw') problems.push(`unsupported encoding ${encoding}`);
    const inactivity = q.has('inactivity_timeout') ? Number(q.get('inactivity_timeout')) : undefined;
    if (inactivity !== undefined && (!Number.isInteger(inactivity) || inactivity < 5 || inactivity > 3600)) {
      problems.push('inactivity_timeout must be an integer between 5 and 3600');
    }
    if (problems.length) return refuse(opts.invalidParams ?? 'close', 400, 3006, `Invalid Message: ${problems.join('; ')}`);

    // §3.8 limits: new sessions per rolling minute, and concurrent sessions per key.
    const key = info.key;
    const now = Date.now();
    const recent = (starts.get(key) ?? []).filter((t) => now - t < 60_000);
    starts.set(key, recent);
    const limitCode = opts.tooManySessionsCode ?? 1008;
    const hit = faultPlan.take('ws');
    if (hit?.kind === '429-storm') {
      concurrency.noteRefusal(key);
      return refuse('close', 429, limitCode, TOO_MANY_SESSIONS_REASON);
    }
    if (hit?.kind === '5xx') {
      if (hit.status !== undefined) return refuse('http', hit.status, 3005, 'Session Cancelled: An error occurred');
      return refuse('close', 500, 3005, 'Session Cancelled: An error occurred');
    }
    if (recent.length >= (opts.newSessionsPerMinute ?? 100) || !concurrency.enter(key)) {
      hit?.refund();
      return refuse('close', 429, limitCode, TOO_MANY_SESSIONS_REASON);
    }
    recent.push(now);

    let ws: WebSocket;
    try {
      ws = await accept();
    } catch (e) {
      concurrency.leave(key);
      throw e;
    }
    ws.once('close', () => concurrency.leave(key)); // before track(): 'session-closed' sees the count already lowered
    track(ws, info);
    if (hit?.kind === 'never-answer') {
      // Accepted (Begin), then silence: audio is taken and logged, nothing else is ever sent.
      ws.on('message', (data: RawData, isBinary: boolean) => {
        const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
        frames.record({ session: info.id, direction: 'in', kind: isBinary ? 'binary' : 'text', size: buf.length });
      });
      sendJson(ws, info, { type: 'Begin', id: info.id, expires_at: Math.floor(Date.now() / 1000) + maxSessionSeconds });
      info.began = true;
      return;
    }

    const faults = takeSessionFaults(handle.faults);
    if (faults.closeBeforeBegin !== undefined) return closeSession(ws, info, faults.closeBeforeBegin, 'Session Cancelled: An error occurred', false);
    runSession(ws, info, {
      sampleRate,
      encoding: encoding as 'pcm_s16le' | 'pcm_mulaw',
      formatTurns: q.get('format_turns') === 'true',
      threshold: numOr(q.get('end_of_turn_confidence_threshold'), 0.4),
      minSilenceMs: numOr(q.get('min_turn_silence') ?? q.get('min_end_of_turn_silence_when_confident'), 400),
      maxSilenceMs: numOr(q.get('max_turn_silence'), 1280),
      inactivitySeconds: inactivity,
      maxSessionSeconds,
      faults,
      ...(hit?.kind === 'drop-after' ? { dropInMs: msUntil(info.openedAt, hit.seconds ?? 0) } : {}),
    });
  };

  /** Register a session and report its close (code, reason) to `sessions()` and 'session-closed'. */
  const track = (ws: WebSocket, info: AssemblyAISessionInfo) => {
    remember(sessions, info);
    events.emit('session-open', info);
    ws.on('error', () => {});
    ws.once('close', (code: number, reason: Buffer) => {
      info.closedAt = performance.now();
      info.closeCode = code;
      info.closeReason = reason.toString();
      events.emit('session-closed', info);
    });
  };

  /** Optional Error frame, then the close frame (§3.4 error frame, §3.6 close codes). */
  const closeSession = (ws: WebSocket, info: AssemblyAISessionInfo, code: number, reason: string, errorFrame: boolean) => {
    if (ws.readyState !== ws.OPEN) return;
    if (errorFrame && (opts.errorFrames ?? true)) sendJson(ws, info, { type: 'Error', error_code: code, error: reason });
    ws.close(code, closeReason(reason));
  };

  const sendJson = (ws: WebSocket, info: AssemblyAISessionInfo, msg: { type: string } & Record<string, unknown>) => {
    if (ws.readyState !== ws.OPEN) return;
    const text = JSON.stringify(msg);
    frames.record({ session: info.id, direction: 'out', kind: 'text', size: text.length, type: msg.type });
    ws.send(text);
  };

  interface SessionParams {
    sampleRate: number;
    encoding: 'pcm_s16le' | 'pcm_mulaw';
    formatTurns: boolean;
    threshold: number;
    minSilenceMs: number;
    maxSilenceMs: number;
    inactivitySeconds: number | undefined;
    maxSessionSeconds: number;
    faults: SessionFaults;
    /** `drop-after`: destroy the socket this many ms from now. */
    dropInMs?: number;
  }

  const runSession = (ws: WebSocket, info: AssemblyAISessionInfo, p: SessionParams) => {
    const cfg = { threshold: p.threshold, minSilenceMs: p.minSilenceMs, maxSilenceMs: p.maxSilenceMs };
    const bytesPerSample = p.encoding === 'pcm_mulaw' ? 1 : 2;
    const converter = new PcmConverter(p.sampleRate, p.encoding);
    const rate = new RateMonitor();
    let ended = false; // an error close or the Termination went out: ignore everything else
    let terminating = false;

    // ---- turn state (§3.5) ----
    let turnOrder = 0;
    let turnWords: Word[] = []; // words the recogniser finalised in the open turn
    let lastFinalEnd = 0; // stream seconds: end of the last finalised word
    let hyp: string[] = []; // the recogniser's hypothesis for the utterance in progress
    let prevHyp: string[] = [];
    let speechAfterFinal = false;
    const eotConfidence = 0.9; // the emulator's "semantic" confidence at a pause

    const fail = (code: number, reason: string) => {
      if (ended) return;
      ended = true;
      cleanup();
      closeSession(ws, info, code, reason, true);
    };

    const turnMessage = (words: TurnWord[], endOfTurn: boolean, formatted: boolean, utterance: string, confidence: number) => {
      const finals = words.filter((w) => w.word_is_final).map((w) => w.text);
      info.turnsSent += 1;
      if (endOfTurn) info.endOfTurnsSent += 1;
      sendJson(ws, info, {
        type: 'Turn',
        turn_order: turnOrder,
        turn_is_formatted: formatted,
        end_of_turn: endOfTurn,
        transcript: finals.join(' '),
        utterance,
        end_of_turn_confidence: confidence,
        words,
      });
    };

    const finalWords = (words: Word[], formatted: boolean): TurnWord[] => {
      const texts = formatted ? punctuate(words.map((w) => w.word)) : words.map((w) => w.word);
      return words.map((w, i) => ({ text: texts[i]!, start: ms(w.start), end: ms(w.end), confidence: w.confidence, word_is_final: true }));
    };

    /** End the open turn (§3.5): end_of_turn true with all words final; optional formatted version. */
    const endTurn = () => {
      if (turnWords.length === 0 || ended) return;
      const plain = finalWords(turnWords, false);
      const text = plain.map((w) => w.text).join(' ');
      if (!p.formatTurns || opts.legacyDoubleFormattedTurn) turnMessage(plain, true, false, text, eotConfidence);
      if (p.formatTurns) {
        const formatted = finalWords(turnWords, true);
        turnMessage(formatted, true, true, opts.legacyDoubleFormattedTurn ? '' : formatted.map((w) => w.text).join(' '), eotConfidence);
      }
      turnOrder += 1;
      turnWords = [];
      prevHyp = [];
    };

    /** End-of-turn once enough silence followed the last word (min when confident, else max). */
    const checkEndOfTurn = () => {
      if (turnWords.length === 0 || speechAfterFinal) return;
      const silenceMs = eotConfidence > cfg.threshold ? cfg.minSilenceMs : cfg.maxSilenceMs;
      if (recogniser.audioSeconds >= lastFinalEnd + silenceMs / 1000) endTurn();
    };

    const onFinal = (u: RecognisedUtterance) => {
      if (ended || u.words.length === 0) return;
      const gapMs = (u.words[0]!.start - lastFinalEnd) * 1000;
      if (turnWords.length && gapMs >= (eotConfidence > cfg.threshold ? cfg.minSilenceMs : cfg.maxSilenceMs)) endTurn();
      turnWords.push(...u.words);
      lastFinalEnd = u.end;
      hyp = [];
      speechAfterFinal = false;
      turnMessage(finalWords(turnWords, false), false, false, '', 0.05);
      checkEndOfTurn();
    };

    /** Partials: the recogniser's hypothesis; words stable across two hypotheses count as final. */
    const onPartial = (text: string, audioEnd: number) => {
      if (ended) return;
      const words = text.split(/\s+/).filter(Boolean);
      if (words.length === 0 || words.join(' ') === hyp.join(' ')) return;
      speechAfterFinal = true;
      prevHyp = hyp;
      hyp = words;
      let stable = 0;
      while (stable < words.length - 1 && stable < prevHyp.length && words[stable] === prevHyp[stable]) stable += 1;
      const from = lastFinalEnd;
      const step = Math.max(0.05, (audioEnd - from) / words.length);
      const tail: TurnWord[] = words.map((w, i) => ({
        text: w,
        start: ms(from + i * step),
        end: ms(from + (i + 1) * step),
        confidence: 0.5,
        word_is_final: i < stable,
      }));
      turnMessage([...finalWords(turnWords, false), ...tail], false, false, '', 0.01);
    };

    const recogniser = new FlushableRecogniser({
      partialMs: opts.partialMs ?? 200,
      onPartial,
      onFinal,
      onError: () => fail(3005, 'Session Cancelled: An error occurred'),
    });

    // ---- timers: session age (§3.8), inactivity (§3.2) ----
    const ageTimer = setTimeout(() => fail(3008, 'Session Expired: Maximum session duration exceeded'), p.maxSessionSeconds * 1000);
    let idleTimer: NodeJS.Timeout | undefined;
    const touch = () => {
      if (p.inactivitySeconds === undefined) return;
      if (idleTimer) clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        const code = opts.inactivityCloseCode ?? 1000;
        if (code === 1000) void terminate();
        else fail(code, 'Session idle for too long');
      }, p.inactivitySeconds * 1000);
    };
    const dropTimer =
      p.dropInMs !== undefined
        ? setTimeout(() => {
            ended = true;
            cleanup();
            ws.terminate(); // no close frame: the client sees 1006
          }, p.dropInMs)
        : undefined;
    function cleanup() {
      clearTimeout(ageTimer);
      clearTimeout(dropTimer);
      if (idleTimer) clearTimeout(idleTimer);
      recogniser.kill();
    }

    /** §3.9: Terminate → remaining Turns → Termination → close 1000. */
    const terminate = async () => {
      if (terminating || ended) return;
      terminating = true;
      if (opts.serviceTimeMs) await delay(opts.serviceTimeMs);
      if (ended) return;
      await recogniser.end();
      if (ended) return;
      speechAfterFinal = false;
      endTurn();
      const sessionSeconds = (performance.now() - info.openedAt) / 1000;
      sendJson(ws, info, {
        type: 'Termination',
        audio_duration_seconds: Math.round(info.audioSeconds),
        session_duration_seconds: Math.round(sessionSeconds),
      });
      info.terminationSent = true;
      ended = true;
      cleanup();
      ws.close(1000);
    };

    const onAudio = (data: Buffer) => {
      if (terminating) return;
      const frameMs = (data.length / bytesPerSample / p.sampleRate) * 1000;
      // §3.3: every frame must hold 50–1000 ms of audio.
      if ((opts.strictFrameDuration ?? true) && (frameMs < 50 || frameMs > 1000)) {
        return fail(3007, `Input duration violation: ${Math.round(frameMs * 100) / 100} ms. Expected between 50 and 1000 ms`);
      }
      // §3.7: faster than real time → 3007 Audio Transmission Rate Exceeded.
      const r = rate.add(frameMs / 1000);
      if ((opts.strictRate ?? true) && r.aheadSeconds > (opts.rateAllowanceSeconds ?? 5)) {
        return fail(3007, `Audio Transmission Rate Exceeded: Received ${r.audioSeconds.toFixed(1)} sec. audio in ${r.elapsedSeconds.toFixed(2)} sec`);
      }
      info.audioSeconds = r.audioSeconds;
      recogniser.write(converter.convert(data));
      checkEndOfTurn();
      const audioMs = r.audioSeconds * 1000;
      if (p.faults.dropAfterAudioMs !== undefined && audioMs >= p.faults.dropAfterAudioMs) {
        ended = true;
        cleanup();
        ws.terminate(); // no close frame: the client sees 1006
        return;
      }
      if (p.faults.cancelAfterAudioMs !== undefined && audioMs >= p.faults.cancelAfterAudioMs) fail(3005, 'Session Cancelled: An error occurred');
    };

    const onText = (raw: string) => {
      let msg: unknown;
      try {
        msg = JSON.parse(raw);
      } catch {
        frames.record({ session: info.id, direction: 'in', kind: 'text', size: raw.length, type: 'invalid-json' });
        return fail(3006, `Invalid JSON: ${raw.slice(0, 60)}`);
      }
      // A non-object, or an object without a string `type` (e.g. v2's {"terminate_session": true}).
      const m = msg as Record<string, unknown>;
      if (msg === null || typeof msg !== 'object' || Array.isArray(msg) || typeof m.type !== 'string') {
        frames.record({ session: info.id, direction: 'in', kind: 'text', size: raw.length, type: 'invalid' });
        return fail(3006, `Invalid Message: ${raw.slice(0, 60)}`);
      }
      const type = m.type;
      frames.record({ session: info.id, direction: 'in', kind: 'text', size: raw.length, type });
      if (terminating) return;
      switch (type) {
        case 'Terminate':
          info.terminateReceived = true;
          if (p.faults.onTerminate === 'ignore') return;
          if (p.faults.onTerminate === 'drop') {
            ended = true;
            cleanup();
            ws.terminate();
            return;
          }
          void terminate();
          return;
        case 'ForceEndpoint':
          // §3.3: end the open turn now — flush the recogniser so every word heard becomes final.
          void recogniser.flush().then(() => {
            speechAfterFinal = false;
            endTurn();
          });
          return;
        case 'KeepAlive':
          return; // resets inactivity (done for every frame); no reply
        case 'UpdateConfiguration': {
          // Silently applied; no acknowledgement (§3.3).
          const num = (k: string) => (typeof m[k] === 'number' ? (m[k] as number) : undefined);
          cfg.threshold = num('end_of_turn_confidence_threshold') ?? cfg.threshold;
          cfg.minSilenceMs = num('min_turn_silence') ?? num('min_end_of_turn_silence_when_confident') ?? cfg.minSilenceMs;
          cfg.maxSilenceMs = num('max_turn_silence') ?? cfg.maxSilenceMs;
          if (typeof m.format_turns === 'boolean') p.formatTurns = m.format_turns;
          return;
        }
        default:
          return fail(3006, `Invalid Message Type: ${type.slice(0, 60)}`);
      }
    };

    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (ended) return;
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      touch();
      if (isBinary) {
        frames.record({ session: info.id, direction: 'in', kind: 'binary', size: buf.length });
        onAudio(buf);
      } else onText(buf.toString('utf8'));
    });
    ws.once('close', () => {
      ended = true;
      cleanup();
    });

    // §3.4: Begin right after the upgrade; expires_at = now + max session (Unix seconds).
    sendJson(ws, info, { type: 'Begin', id: info.id, expires_at: Math.floor(Date.now() / 1000) + p.maxSessionSeconds });
    info.began = true;
    touch();
  };

  const srv = await startWsServer({
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    ...(opts.host !== undefined ? { host: opts.host } : {}),
    ...(opts.tls ? { tls: opts.tls } : {}),
    onRequest,
    onUpgrade,
  });

  return {
    name: 'assemblyai',
    url: srv.url,
    wsUrl: srv.url.replace(/^http/, 'ws'),
    port: srv.port,
    concurrency,
    frames,
    events,
    get faults() {
      return handle.faults;
    },
    set faults(f: AssemblyAIFaults) {
      handle.faults = f;
    },
    faultPlan,
    sessions: () => [...sessions.values()],
    issueToken,
    close: () => srv.close(),
  };
}

type SessionFaults = Pick<AssemblyAIFaults, 'dropAfterAudioMs' | 'cancelAfterAudioMs' | 'closeBeforeBegin' | 'onTerminate'>;

/** Session-level faults apply to the next session only. */
function takeSessionFaults(f: AssemblyAIFaults): SessionFaults {
  const taken: SessionFaults = {};
  if (f.dropAfterAudioMs !== undefined) taken.dropAfterAudioMs = f.dropAfterAudioMs;
  if (f.cancelAfterAudioMs !== undefined) taken.cancelAfterAudioMs = f.cancelAfterAudioMs;
  if (f.closeBeforeBegin !== undefined) taken.closeBeforeBegin = f.closeBeforeBegin;
  if (f.onTerminate !== undefined) taken.onTerminate = f.onTerminate;
  delete f.onTerminate;
  delete f.dropAfterAudioMs;
  delete f.cancelAfterAudioMs;
  delete f.closeBeforeBegin;
  return taken;
}

function numOr(v: string | null, def: number): number {
  if (v === null) return def;
  const n = Number(v);
  return Number.isFinite(n) ? n : def;
}
