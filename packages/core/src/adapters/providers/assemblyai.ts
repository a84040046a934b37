/**
 * AssemblyAI Universal Streaming v3 client (providers.md §3, Appendix A). Stream mode only: opens
 * `wss://…/v3/ws` with the raw key in `Authorization`, waits for `Begin`, sends 16 kHz s16le PCM on
 * real-time deadlines in `chunkMs` frames (50–1000 ms each, the tail padded to ≥ 50 ms), then
 * `{"type":"Terminate"}` and waits — bounded by progress, released on close — for `Termination`
 * (§3.9). Turns are keyed by `turn_order` (the last end-of-turn version wins, which also absorbs the
 * legacy unformatted + formatted pair of §3.5) and converted from integer ms to seconds. With the
 * `speaker_labels` option a Turn's `speaker_label` ("A", "B", …) becomes the 0-based `speaker` of its
 * segment and words; "UNKNOWN" (a turn too short to tell) leaves them without one.
 */
import {
  ProviderAuthError,
  ProviderPaymentError,
  ProviderRateLimitedError,
  ProviderRejectedError,
  ProviderUnavailableError,
  type ScribeError,
} from '../../domain/errors';
import { segmentFromWords, type Segment, type Transcript, type Word } from '../../domain/transcript';
import type { TranscribeRequest } from '../../ports/provider';
import { finalizeLimits } from './shared/finalize-wait';
import { redact } from './shared/redact';
import { StreamingProvider, streamUrl, type StreamHandler, type StreamPhase, type StreamProtocol, type StreamSink } from './shared/stream-session';
import { segmentsInOrder, transcriptWord } from './shared/words';
import type { WsCloseInfo } from './shared/ws-socket';

export interface AssemblyAIProviderOptions {
  apiKey: string;
  /** wss://streaming.assemblyai.com (EU: wss://streaming.eu.assemblyai.com); `/v3/ws` is appended. */
  baseUrl: string;
  /** Audio per frame, 50–1000 ms (§3.3). Default 100 (the pacing guide's default). */
  chunkMs?: number;
  /** `speech_model` when the job names none (§3.2: required by current docs). */
  speechModel?: string;
  /**
   * The wait for `Termination` after `Terminate` is bounded by progress (shared/finalize-wait
   * `withinProgress`): it fails (PROVIDER_TIMEOUT, retryable) once the server has sent nothing at all
   * for this long (FINALIZE_IDLE_MS, default 20 000), or after `finalizeIdleMs +
   * finalizeMsPerAudioSecond × audio seconds not yet in an ended turn` in all. The Node SDK gives up
   * after 5000 ms and closes anyway; an archive must not lose the last turn. A close releases the
   * wait at once.
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
  /** With `speaker_labels=true` (§3.4): "A", "B", …, or "UNKNOWN"; newer docs say it may also be null. */
  speaker_label?: string | null;
}

/** Query parameters this client controls; a job's options may not override them. */
const RESERVED = new Set(['sample_rate', 'encoding', 'token', 'speech_model']);
/** §3.9: ends the session; also said on abort, since unterminated sessions keep counting against the limits (§3.8). */
const TERMINATE = JSON.stringify({ type: 'Terminate' });
/** A close's phase as the message says it. */
const CLOSE_PHASE: Record<StreamPhase, string> = { opening: 'before Begin', streaming: 'mid-stream', finalizing: 'before Termination' };

export class AssemblyAIProvider extends StreamingProvider<AssemblyAIProviderOptions> {
  constructor(opts: AssemblyAIProviderOptions) {
    super('assemblyai', opts, 1000); // §3.3, §3.7: frames of 50–1000 ms, paced in real time
  }

  /**
   * §3.1–§3.9 as the shared lifecycle runs it: `Begin` opens the session and names it; `Terminate` →
   * remaining Turns → `Termination` → close 1000.
   */
  protected protocol(): StreamProtocol {
    return {
      url: (req) => this.url(req),
      headers: { Authorization: this.opts.apiKey }, // raw key, no scheme (§3.1)
      opening: 'Begin', // §3.4: Begin comes first; a close before it fails the connect (OpenWhispr#1239)
      finalize: { message: TERMINATE, awaiting: 'Termination', after: 'Terminate', limits: finalizeLimits(this.opts, this.opts.terminationTimeoutMs), sendOnAbort: true },
      start: (req, sink) => this.session(req, sink),
    };
  }

  private url(req: TranscribeRequest): string {
    const url = streamUrl(this.opts.baseUrl, '/v3/ws');
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

  /** One session's frames: Begin, Turns keyed by turn_order, the Error frame, Termination. */
  private session(req: TranscribeRequest, sink: StreamSink): StreamHandler {
    const turns = new Map<number, TurnMsg>();
    let serverError: { code?: number; message: string } | undefined;
    return {
      onMessage: (msg) => {
        if ('error' in msg) {
          // §3.4 error frame, sent before an error close; the close carries the verdict.
          const code = typeof msg.error_code === 'number' ? msg.error_code : undefined;
          serverError = { message: redact(String(msg.error), [this.opts.apiKey]), ...(code !== undefined ? { code } : {}) };
          return;
        }
        switch (msg.type) {
          case 'Begin':
            sink.opened(String(msg.id));
            break;
          case 'Turn':
            this.onTurn(msg as unknown as TurnMsg, turns, (t) => report(t, sink));
            break;
          case 'Termination':
            sink.finalized();
            break;
          default:
            // SpeechStarted, …: not needed for an archive transcript. SpeakerRevision (speaker_labels,
            // just before Termination, §3.4/§3.9): its fields are UNCONFIRMED, so it is not read — a
            // guess at its shape could relabel turns wrongly; the Turns' own labels stand.
            break;
        }
      },
      closeError: (info, phase) => this.closeError(info, serverError, CLOSE_PHASE[phase]),
      transcript: (requestId, duration) => this.transcript(req, requestId, turns, duration),
    };
  }

  /** Keep one version per turn_order: the latest end-of-turn version wins; a partial never replaces it. */
  private onTurn(t: TurnMsg, turns: Map<number, TurnMsg>, report: (t: TurnMsg) => void): void {
    if (typeof t.turn_order !== 'number' || !Array.isArray(t.words)) return;
    const prev = turns.get(t.turn_order);
    if (!prev || t.end_of_turn || !prev.end_of_turn) turns.set(t.turn_order, t);
    report(t);
  }

  private transcript(req: TranscribeRequest, requestId: string, turns: Map<number, TurnMsg>, duration: number): Transcript {
    const segments = segmentsInOrder(
      turns,
      // A turn that never ended (should not happen after Termination) keeps only its final words.
      (t) => (t.end_of_turn ? t.words : t.words.filter((w) => w.word_is_final)).map((w) => toWord(w, speakerIndex(t.speaker_label))),
      (t) => (t.end_of_turn ? t.transcript.trim() : undefined),
    );
    for (const seg of segments) withSpeaker(seg);
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

/** A kept Turn's events: the first words, the audio its end covers, and the ended turn as a final result. */
function report(t: TurnMsg, sink: StreamSink): void {
  if (sink.firstResultPending && t.words.length > 0) sink.firstResult(() => Math.max(...t.words.map((w) => w.end)) / 1000);
  if (!t.end_of_turn) return;
  sink.finalThrough((t.words.at(-1)?.end ?? 0) / 1000);
  sink.final(t.turn_order, () => ({
    start: (t.words[0]?.start ?? 0) / 1000,
    end: (t.words[t.words.length - 1]?.end ?? 0) / 1000,
    segment: withSpeaker(segmentFromWords(t.words.map((w) => toWord(w, speakerIndex(t.speaker_label))))),
  }));
}

/** §3.4 word (integer ms) → transcript word (seconds; with its turn's speaker); formatted text goes to punctuated_word. */
function toWord(w: TurnWordMsg, speaker?: number): Word {
  const word = transcriptWord(w.text, w.start / 1000, w.end / 1000, w.confidence);
  if (speaker !== undefined) word.speaker = speaker;
  return word;
}

/**
 * A `speaker_label` as the transcript's 0-based speaker: "A" → 0, "B" → 1, … by letter (max_speakers
 * is at most 10, §3.2). "UNKNOWN", null, or anything else → none: the turn keeps no speaker rather than
 * a wrong one.
 */
function speakerIndex(label: unknown): number | undefined {
  return typeof label === 'string' && /^[A-Z]$/.test(label) ? label.charCodeAt(0) - 65 : undefined;
}

/** The segment carries its words' speaker (all of a turn's words have the turn's label). */
function withSpeaker(seg: Segment): Segment {
  const speaker = seg.words[0]?.speaker;
  if (speaker !== undefined && seg.words.every((w) => w.speaker === speaker)) seg.speaker = speaker;
  return seg;
}
