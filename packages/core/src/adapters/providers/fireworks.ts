/**
 * Fireworks streaming ASR client (providers.md §4, Appendix A). Stream mode only: opens
 * `wss://…/v1/audio/transcriptions/streaming` with the raw key in `Authorization`, sends 16 kHz mono
 * s16le PCM on real-time deadlines in `chunkMs` frames (50–400 ms, the tail padded to ≥ 50 ms), keeps
 * the state dict of §4.4 (every message's segments overwrite earlier ones with the same id; ids
 * normalised with `Number(id)`), then finishes with `{"checkpoint_id":"final"}`, waits — bounded by
 * progress — for its echo and closes the socket itself (the server never does, §4.5).
 */
import { randomUUID } from 'node:crypto';
import {
  ConfigError,
  ProviderRejectedError,
  ProviderUnavailableError,
  UnsupportedCombinationError,
  type ScribeError,
} from '../../domain/errors';
import { chunkBytesFor, pacedSend, PCM_BYTES_PER_SECOND, rechunk, type PacingReport } from '../../domain/pacing';
import { segmentFromWords, type Segment, type Transcript, type Word } from '../../domain/transcript';
import type { Provider, ProviderResult, SessionContext, TranscribeRequest } from '../../ports/provider';
import {
  abortError,
  countBytes,
  Deferred,
  finalizeLimits,
  finalizeWithinProgress,
  padLastChunk,
  redact,
  transcriptWord,
  within,
  WsSession,
  type WsCloseInfo,
} from './ws-session';

export const FIREWORKS_STREAMING_PATH = '/v1/audio/transcriptions/streaming';

export interface FireworksProviderOptions {
  apiKey: string;
  /** wss://audio-streaming.api.fireworks.ai (v2: wss://audio-streaming-v2.api.fireworks.ai); the path is appended. */
  baseUrl: string;
  /** Audio per frame, 50–400 ms (§4.3). Default 100. */
  chunkMs?: number;
  /**
   * The wait for the final checkpoint echo is bounded by progress (ws-session `withinProgress`): it
   * fails (PROVIDER_TIMEOUT, retryable) once the server has sent nothing at all for this long
   * (FINALIZE_IDLE_MS, default 20 000), or after `finalizeIdleMs + finalizeMsPerAudioSecond × audio
   * seconds not yet in a final segment` in all.
   */
  finalizeIdleMs?: number;
  /** FINALIZE_MS_PER_AUDIO_SECOND (default 1000); see `finalizeIdleMs`. */
  finalizeMsPerAudioSecond?: number;
  /** Explicit per-client override of `finalizeIdleMs` (the idle bound of the final echo wait). */
  finalTimeoutMs?: number;
  /** Bound on connect + upgrade. Default 10 000 ms. */
  connectTimeoutMs?: number;
}

interface FwWord {
  word: string;
  probability?: number;
  is_final?: boolean;
  start?: number;
  end?: number;
}

interface FwSegment {
  id: number | string;
  text?: string;
  words?: FwWord[];
  start?: number;
  end?: number;
}

/** The checkpoint that ends a session (seed fireworks-streaming.txt, cookbook, LiveKit plugin). */
const FINAL_CHECKPOINT = 'final';
/** Query parameters this client controls. */
const RESERVED = new Set(['response_format', 'timestamp_granularities', 'Authorization']);

export class FireworksProvider implements Provider {
  readonly name = 'fireworks';
  private readonly chunkMs: number;

  constructor(private readonly opts: FireworksProviderOptions) {
    this.chunkMs = opts.chunkMs ?? 100;
    if (!(this.chunkMs >= 50 && this.chunkMs <= 400)) throw new ConfigError(`fireworks: chunkMs must be 50–400 ms (got ${this.chunkMs})`);
    if (!opts.apiKey) throw new ConfigError('fireworks: an API key is required');
  }

  private url(req: TranscribeRequest): string {
    const base = this.opts.baseUrl.replace(/\/+$/, '');
    const url = new URL(base.endsWith(FIREWORKS_STREAMING_PATH) ? base : `${base}${FIREWORKS_STREAMING_PATH}`);
    url.searchParams.set('response_format', 'verbose_json');
    // §4.2: start/end on words and segments only with timestamp_granularities.
    url.searchParams.set('timestamp_granularities', 'word,segment');
    if (req.model) url.searchParams.set('model', req.model);
    for (const [k, v] of Object.entries(req.options)) {
      if (!RESERVED.has(k)) url.searchParams.set(k, Array.isArray(v) ? v.join(',') : String(v));
    }
    return url.toString();
  }

  async transcribe(req: TranscribeRequest, ctx: SessionContext): Promise<ProviderResult> {
    if (req.mode !== 'stream') throw new UnsupportedCombinationError(`fireworks supports stream mode only (got ${req.mode})`);
    const secrets = [this.opts.apiKey];
    const stop = new AbortController();
    const onCallerAbort = () => stop.abort(abortError(this.name, ctx.signal));
    ctx.signal.addEventListener('abort', onCallerAbort, { once: true });

    // Fireworks reports no session id: the request id is ours.
    const requestId = randomUUID();
    const state = new Map<number, FwSegment>();
    const finalsReported = new Set<number>();
    const finalEcho = new Deferred<void>();
    let serverError: string | undefined;
    let fatal: ScribeError | undefined;
    let session: WsSession | undefined;
    let firstResult = false;
    let bytes = 0;
    let chunks = 0;
    let audioBytes = 0;
    let finalThroughSeconds = 0; // audio covered by final segments

    try {
      session = await WsSession.open({
        provider: this.name,
        url: this.url(req),
        headers: { Authorization: this.opts.apiKey }, // raw key, no scheme (§4.1)
        signal: ctx.signal,
        connectTimeoutMs: this.opts.connectTimeoutMs ?? 10_000,
        secrets,
      });
      const ws = session;
      ctx.onEvent?.({ type: 'session:open', requestId });

      ws.onMessage((data, isBinary) => {
        if (isBinary) return;
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
        } catch {
          return;
        }
        if (msg.checkpoint_id === FINAL_CHECKPOINT || (msg.object === 'stt.output.trace' && msg.trace_id === FINAL_CHECKPOINT)) {
          finalEcho.resolve();
          return;
        }
        if (typeof msg.error === 'string' || (msg.error && typeof msg.error === 'object')) {
          serverError = redact(typeof msg.error === 'string' ? msg.error : JSON.stringify(msg.error), secrets).slice(0, 200);
          return;
        }
        if (!Array.isArray(msg.segments)) return;
        // §4.4 state dict: overwrite by id, insert new ids; ids may be strings ("0").
        for (const seg of msg.segments as FwSegment[]) {
          const id = Number(seg?.id);
          if (!Number.isFinite(id)) continue;
          state.set(id, seg);
          const words = seg.words ?? [];
          if (!firstResult && (seg.text ?? '').trim()) {
            firstResult = true;
            ctx.onEvent?.({ type: 'session:first-result', audioSeconds: words.at(-1)?.end ?? seg.end ?? 0 });
          }
          // A segment is final when its last word is (the LiveKit plugin's rule, §4.4).
          if (words.length && words.at(-1)!.is_final === true) finalThroughSeconds = Math.max(finalThroughSeconds, words.at(-1)!.end ?? seg.end ?? 0);
          if (words.length && words.at(-1)!.is_final === true && !finalsReported.has(id)) {
            finalsReported.add(id);
            ctx.onEvent?.({ type: 'session:final', index: id, start: words[0]!.start ?? seg.start ?? 0, end: words.at(-1)!.end ?? seg.end ?? 0, segment: segmentFromWords(toWords(seg)) });
          }
        }
      });

      void ws.closed.then((info) => {
        ctx.onEvent?.({ type: 'session:closed', code: info.code, reason: info.reason });
        if (finalEcho.settled) return;
        fatal = this.closeError(info, serverError);
        finalEcho.reject(fatal);
        stop.abort(fatal);
      });

      // §4.3: real-time pacing, 50–400 ms frames, tail padded to 50 ms.
      const pacing: PacingReport = await pacedSend({
        chunks: padLastChunk(rechunk(countBytes(req.audio.pcm(stop.signal), (n) => (audioBytes += n)), chunkBytesFor(this.chunkMs)), chunkBytesFor(50)),
        clock: ctx.clock,
        signal: stop.signal,
        onLateness: (ms) => ctx.onEvent?.({ type: 'session:chunk-lateness', ms }),
        send: async (chunk) => {
          await ws.send(chunk);
          bytes += chunk.length;
          chunks += 1;
        },
      });

      // §4.5: the final checkpoint is answered after all prior audio is processed; then we close.
      await ws.send(JSON.stringify({ checkpoint_id: FINAL_CHECKPOINT }));
      await finalizeWithinProgress(finalEcho.promise, {
        provider: this.name,
        awaiting: 'final checkpoint echo',
        after: 'the final checkpoint',
        clock: ctx.clock,
        limits: finalizeLimits(this.opts, this.opts.finalTimeoutMs),
        pendingAudioSeconds: bytes / PCM_BYTES_PER_SECOND - finalThroughSeconds,
        activity: (onFrame) => ws.onActivity(onFrame),
        signal: stop.signal,
      });
      await ws.close(1000, '', 1000);

      const transcript = this.transcript(req, requestId, state, audioBytes / PCM_BYTES_PER_SECOND);
      return {
        transcript,
        stats: { requestId, bytesSent: bytes, chunksSent: chunks, finalResults: transcript.segments.length, reconnects: 0, pacing },
      };
    } catch (err) {
      if (ctx.signal.aborted) throw abortError(this.name, ctx.signal);
      if (!fatal && session && !session.isOpen) await within(session.closed, 1000, () => new Error('close wait')).catch(() => undefined);
      if (fatal) throw fatal;
      throw err;
    } finally {
      ctx.signal.removeEventListener('abort', onCallerAbort);
      if (!stop.signal.aborted) stop.abort();
      if (session?.isOpen) await session.close(1000, '', 500);
      else session?.terminate();
    }
  }

  private transcript(req: TranscribeRequest, requestId: string, state: Map<number, FwSegment>, duration: number): Transcript {
    const segments: Segment[] = [];
    for (const id of [...state.keys()].sort((a, b) => a - b)) {
      const seg = state.get(id)!;
      const words = toWords(seg);
      if (words.length === 0) continue;
      const out = segmentFromWords(words);
      if (seg.text?.trim()) out.text = seg.text.trim();
      segments.push(out);
    }
    return { provider: this.name, model: req.model, requestId, duration, channels: 1, segments };
  }

  /**
   * A close before the final echo (§4.6: codes undocumented). Like the LiveKit plugin we treat it as
   * retryable, except the policy/protocol codes that say our own frames were wrong.
   */
  private closeError(info: WsCloseInfo, serverError: string | undefined): ScribeError {
    const text = redact(info.reason || serverError || '', [this.opts.apiKey]);
    const msg = `fireworks: session closed ${info.code} before the final checkpoint echo${text ? ` (${text})` : ''}`;
    if ([1002, 1003, 1007, 1008, 1009].includes(info.code)) return new ProviderRejectedError(msg, { status: info.code });
    return new ProviderUnavailableError(msg, { status: info.code });
  }
}

/** Segment words → transcript words; text with punctuation/casing goes to punctuated_word. */
function toWords(seg: FwSegment): Word[] {
  const raw = (seg.words ?? []).filter((w) => typeof w.word === 'string' && w.word.trim());
  if (raw.length === 0 && seg.text?.trim()) {
    // No word list: spread the segment's words over its span (or zero when it has none).
    const texts = seg.text.trim().split(/\s+/);
    const start = seg.start ?? 0;
    const step = ((seg.end ?? start) - start) / texts.length;
    return texts.map((t, i) => transcriptWord(t, start + i * step, start + (i + 1) * step, 1));
  }
  return raw.map((w) => transcriptWord(w.word.trim(), w.start ?? seg.start ?? 0, w.end ?? seg.end ?? 0, w.probability ?? 1));
}
