/**
 * AssemblyAI Universal Streaming v3 client (providers.md §3, Appendix A). Stream mode only: opens
 * `wss://…/v3/ws` with the raw key in `Authorization`, waits for `Begin`, sends 16 kHz s16le PCM on
 * real-time deadlines in `chunkMs` frames (50–1000 ms each, the tail padded to ≥ 50 ms), then
 * `{"type":"Terminate"}` and waits — bounded by progress, released on close — for `Termination`
 * (§3.9). Turns are keyed by `turn_order` (the last end-of-turn version wins, which also absorbs the
 * legacy unformatted + formatted pair of §3.5) and converted from integer ms to seconds.
 */
import {
  ConfigError,
  ProviderAuthError,
  ProviderPaymentError,
  ProviderRateLimitedError,
  ProviderRejectedError,
  ProviderTimeoutError,
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

export interface AssemblyAIProviderOptions {
  apiKey: string;
  /** wss://streaming.assemblyai.com (EU: wss://streaming.eu.assemblyai.com); `/v3/ws` is appended. */
  baseUrl: string;
  /** Audio per frame, 50–1000 ms (§3.3). Default 100 (the pacing guide's default). */
  chunkMs?: number;
  /** `speech_model` when the job names none (§3.2: required by current docs). */
  speechModel?: string;
  /**
   * The wait for `Termination` after `Terminate` is bounded by progress (ws-session `withinProgress`):
   * it fails (PROVIDER_TIMEOUT, retryable) once the server has sent nothing at all for this long
   * (FINALIZE_IDLE_MS, default 20 000), or after `finalizeIdleMs + finalizeMsPerAudioSecond × audio
   * seconds not yet in an ended turn` in all. The Node SDK gives up after 5000 ms and closes anyway;
   * an archive must not lose the last turn. A close releases the wait at once.
   */
  finalizeIdleMs?: number;
  /** FINALIZE_MS_PER_AUDIO_SECOND (default 1000); see `finalizeIdleMs`. */
  finalizeMsPerAudioSecond?: number;
  /** Explicit per-client override of `finalizeIdleMs` (the idle bound of the Termination wait). */
  terminationTimeoutMs?: number;
  /** Bound on connect + upgrade + `Begin`. Default 10 000 ms. */
  connectTimeoutMs?: number;
}

interface TurnWordMsg {
  text: string;
  start: number;
  end: number;
  confidence: number;
  word_is_final: boolean;
}

interface TurnMsg {
  type: 'Turn';
  turn_order: number;
  turn_is_formatted: boolean;
  end_of_turn: boolean;
  transcript: string;
  words: TurnWordMsg[];
}

/** Query parameters this client controls; a job's options may not override them. */
const RESERVED = new Set(['sample_rate', 'encoding', 'token', 'speech_model']);

export class AssemblyAIProvider implements Provider {
  readonly name = 'assemblyai';
  private readonly chunkMs: number;

  constructor(private readonly opts: AssemblyAIProviderOptions) {
    this.chunkMs = opts.chunkMs ?? 100;
    if (!(this.chunkMs >= 50 && this.chunkMs <= 1000)) throw new ConfigError(`assemblyai: chunkMs must be 50–1000 ms (got ${this.chunkMs})`);
    if (!opts.apiKey) throw new ConfigError('assemblyai: an API key is required');
  }

  private url(req: TranscribeRequest): string {
    const base = this.opts.baseUrl.replace(/\/+$/, '');
    const url = new URL(base.endsWith('/v3/ws') ? base : `${base}/v3/ws`);
    url.searchParams.set('sample_rate', '16000');
    url.searchParams.set('encoding', 'pcm_s16le');
    url.searchParams.set('speech_model', req.model || this.opts.speechModel || 'universal-streaming-english');
    for (const [k, v] of Object.entries(req.options)) {
      if (RESERVED.has(k)) continue;
      // Arrays (keyterms_prompt) are JSON strings on the wire, as the SDK sends them (§3.2).
      url.searchParams.set(k, Array.isArray(v) ? JSON.stringify(v) : String(v));
    }
    return url.toString();
  }

  async transcribe(req: TranscribeRequest, ctx: SessionContext): Promise<ProviderResult> {
    if (req.mode !== 'stream') throw new UnsupportedCombinationError(`assemblyai supports stream mode only (got ${req.mode})`);
    const secrets = [this.opts.apiKey];
    // Stops the audio pipeline and the pacing loop when the caller aborts or the session fails.
    const stop = new AbortController();
    const onCallerAbort = () => stop.abort(abortError(this.name, ctx.signal));
    ctx.signal.addEventListener('abort', onCallerAbort, { once: true });

    let session: WsSession | undefined;
    let terminateSent = false;
    let serverError: { code?: number; message: string } | undefined;
    let fatal: ScribeError | undefined;
    const begin = new Deferred<{ id: string }>();
    const termination = new Deferred<void>();
    const turns = new Map<number, TurnMsg>();
    const finalsReported = new Set<number>();
    let firstResult = false;
    let bytes = 0;
    let chunks = 0;
    let audioBytes = 0; // before tail padding
    let finalThroughSeconds = 0; // audio covered by ended turns

    try {
      session = await WsSession.open({
        provider: this.name,
        url: this.url(req),
        headers: { Authorization: this.opts.apiKey }, // raw key, no scheme (§3.1)
        signal: ctx.signal,
        connectTimeoutMs: this.opts.connectTimeoutMs ?? 10_000,
        secrets,
      });
      const ws = session;

      ws.onMessage((data, isBinary) => {
        if (isBinary) return;
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
        } catch {
          return;
        }
        if ('error' in msg) {
          // §3.4 error frame, sent before an error close; the close carries the verdict.
          const code = typeof msg.error_code === 'number' ? msg.error_code : undefined;
          serverError = { message: redact(String(msg.error), secrets), ...(code !== undefined ? { code } : {}) };
          return;
        }
        switch (msg.type) {
          case 'Begin':
            begin.resolve({ id: String(msg.id) });
            break;
          case 'Turn':
            this.onTurn(msg as unknown as TurnMsg, turns, (t) => {
              if (!firstResult && t.words.length > 0) {
                firstResult = true;
                ctx.onEvent?.({ type: 'session:first-result', audioSeconds: Math.max(...t.words.map((w) => w.end)) / 1000 });
              }
              if (t.end_of_turn) finalThroughSeconds = Math.max(finalThroughSeconds, (t.words.at(-1)?.end ?? 0) / 1000);
              if (t.end_of_turn && !finalsReported.has(t.turn_order)) {
                finalsReported.add(t.turn_order);
                const ws0 = t.words[0];
                const wsN = t.words[t.words.length - 1];
                ctx.onEvent?.({ type: 'session:final', index: t.turn_order, start: (ws0?.start ?? 0) / 1000, end: (wsN?.end ?? 0) / 1000, segment: segmentFromWords(t.words.map(toWord)) });
              }
            });
            break;
          case 'Termination':
            termination.resolve();
            break;
          default:
            break; // SpeechStarted, SpeakerRevision, …: not needed for an archive transcript
        }
      });

      // Any close before Termination ends the session: fail whatever is waiting.
      void ws.closed.then((info) => {
        ctx.onEvent?.({ type: 'session:closed', code: info.code, reason: info.reason });
        if (termination.settled) return;
        fatal = this.closeError(info, serverError, begin.settled ? (terminateSent ? 'before Termination' : 'mid-stream') : 'before Begin');
        begin.reject(fatal);
        termination.reject(fatal);
        stop.abort(fatal);
      });

      // §3.4: Begin comes first; a close before it fails the connect (OpenWhispr#1239).
      const started = await within(
        begin.promise,
        this.opts.connectTimeoutMs ?? 10_000,
        () => new ProviderTimeoutError(`assemblyai: no Begin within ${this.opts.connectTimeoutMs ?? 10_000} ms`),
        stop.signal,
      );
      ctx.onEvent?.({ type: 'session:open', requestId: started.id });

      // §3.7: real-time pacing on absolute deadlines; every frame 50–1000 ms, the tail padded.
      const chunkBytes = chunkBytesFor(this.chunkMs);
      const pacing: PacingReport = await pacedSend({
        chunks: padLastChunk(rechunk(countBytes(req.audio.pcm(stop.signal), (n) => (audioBytes += n)), chunkBytes), chunkBytesFor(50)),
        clock: ctx.clock,
        signal: stop.signal,
        onLateness: (ms) => ctx.onEvent?.({ type: 'session:chunk-lateness', ms }),
        send: async (chunk) => {
          await ws.send(chunk);
          bytes += chunk.length;
          chunks += 1;
        },
      });

      // §3.9: Terminate → remaining Turns → Termination → close 1000.
      terminateSent = true;
      await ws.send(JSON.stringify({ type: 'Terminate' }));
      await finalizeWithinProgress(termination.promise, {
        provider: this.name,
        awaiting: 'Termination',
        after: 'Terminate',
        clock: ctx.clock,
        limits: finalizeLimits(this.opts, this.opts.terminationTimeoutMs),
        pendingAudioSeconds: bytes / PCM_BYTES_PER_SECOND - finalThroughSeconds,
        activity: (onFrame) => ws.onActivity(onFrame),
        signal: stop.signal,
      });
      await ws.close(1000, '', 1000);

      const transcript = this.transcript(req, started.id, turns, audioBytes / PCM_BYTES_PER_SECOND);
      return {
        transcript,
        stats: { requestId: started.id, bytesSent: bytes, chunksSent: chunks, finalResults: transcript.segments.length, reconnects: 0, pacing },
      };
    } catch (err) {
      if (ctx.signal.aborted) {
        // Unterminated sessions keep counting against the limits (§3.8): say Terminate, then go.
        if (session?.isOpen && !terminateSent) await session.send(JSON.stringify({ type: 'Terminate' })).catch(() => undefined);
        throw abortError(this.name, ctx.signal);
      }
      // A failed send usually means the server just closed: report the close, not the symptom.
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

  /** Keep one version per turn_order: the latest end-of-turn version wins; a partial never replaces it. */
  private onTurn(t: TurnMsg, turns: Map<number, TurnMsg>, report: (t: TurnMsg) => void): void {
    if (typeof t.turn_order !== 'number' || !Array.isArray(t.words)) return;
    const prev = turns.get(t.turn_order);
    if (!prev || t.end_of_turn || !prev.end_of_turn) turns.set(t.turn_order, t);
    report(t);
  }

  private transcript(req: TranscribeRequest, requestId: string, turns: Map<number, TurnMsg>, duration: number): Transcript {
    const segments: Segment[] = [];
    for (const order of [...turns.keys()].sort((a, b) => a - b)) {
      const t = turns.get(order)!;
      // A turn that never ended (should not happen after Termination) keeps only its final words.
      const src = t.end_of_turn ? t.words : t.words.filter((w) => w.word_is_final);
      const words: Word[] = src.map((w) => toWord(w));
      if (words.length === 0) continue;
      const seg = segmentFromWords(words);
      if (t.end_of_turn && t.transcript.trim()) seg.text = t.transcript.trim();
      segments.push(seg);
    }
    return { provider: this.name, model: req.model || this.opts.speechModel || 'universal-streaming-english', requestId, duration, channels: 1, segments };
  }

  /** Appendix A classification of a close (plus the Error frame that preceded it, if any). */
  private closeError(info: WsCloseInfo, frame: { code?: number; message: string } | undefined, phase: string): ScribeError {
    const code = info.code === 1006 && frame?.code ? frame.code : info.code;
    const text = redact(info.reason || frame?.message || '', [this.opts.apiKey]);
    const msg = `assemblyai: session closed ${info.code} ${phase}${text ? ` (${text})` : ''}`;
    const opts = { status: code };
    if (code === 3009 || (code === 1008 && /too many (concurrent )?sessions/i.test(text)) || code === 4029 || code === 4102) {
      return new ProviderRateLimitedError(msg, opts);
    }
    if (code === 1008 || code === 4001) {
      return /insufficient|balance|funds|payment/i.test(text) ? new ProviderPaymentError(msg, opts) : new ProviderAuthError(msg, opts);
    }
    if (code === 4002) return new ProviderPaymentError(msg, opts);
    if (code === 3006 || code === 3007 || code === 3008 || code === 1002 || code === 1003 || code === 1007 || code === 1009) {
      return new ProviderRejectedError(msg, opts);
    }
    if (code >= 4000 && code < 5000) return new ProviderRejectedError(msg, opts);
    // 3005, 1001, 1006, 1011, 1012, 1013, an early 1000 and anything unknown: worth another attempt.
    return new ProviderUnavailableError(msg, opts);
  }
}

/** §3.4 word (integer ms) → transcript word (seconds); formatted text goes to punctuated_word. */
function toWord(w: TurnWordMsg): Word {
  return transcriptWord(w.text, w.start / 1000, w.end / 1000, w.confidence);
}
