/**
 * Fireworks streaming ASR client (providers.md §4, Appendix A). Stream mode only: opens
 * `wss://…/v1/audio/transcriptions/streaming` with the raw key in `Authorization`, sends 16 kHz mono
 * s16le PCM on real-time deadlines in `chunkMs` frames (50–400 ms, the tail padded to ≥ 50 ms), keeps
 * the state dict of §4.4 (every message's segments overwrite earlier ones with the same id; ids
 * normalised with `Number(id)`), then finishes with `{"checkpoint_id":"final"}`, waits — bounded by
 * progress — for its echo and closes the socket itself (the server never does, §4.5).
 */
import { ProviderRejectedError, ProviderUnavailableError, type ScribeError } from '../../domain/errors';
import { segmentFromWords, type Transcript, type Word } from '../../domain/transcript';
import type { TranscribeRequest } from '../../ports/provider';
import { finalizeLimits } from './shared/finalize-wait';
import { redact } from './shared/redact';
import { StreamingProvider, streamUrl, type StreamHandler, type StreamProtocol, type StreamSink } from './shared/stream-session';
import { segmentsInOrder, transcriptWord } from './shared/words';
import type { WsCloseInfo } from './shared/ws-socket';

export const FIREWORKS_STREAMING_PATH = '/v1/audio/transcriptions/streaming';

export interface FireworksProviderOptions {
  apiKey: string;
  /** wss://audio-streaming.api.fireworks.ai (v2: wss://audio-streaming-v2.api.fireworks.ai); the path is appended. */
  baseUrl: string;
  /** Audio per frame, 50–400 ms (§4.3). Default 100. */
  chunkMs?: number;
  /**
   * The wait for the final checkpoint echo is bounded by progress (shared/finalize-wait
   * `withinProgress`): it fails (PROVIDER_TIMEOUT, retryable) once the server has sent nothing at all
   * for this long (FINALIZE_IDLE_MS, default 20 000), or after `finalizeIdleMs +
   * finalizeMsPerAudioSecond × audio seconds not yet in a final segment` in all.
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

export class FireworksProvider extends StreamingProvider<FireworksProviderOptions> {
  constructor(opts: FireworksProviderOptions) {
    super('fireworks', opts, 400); // §4.3: frames of 50–400 ms, paced in real time
  }

  /**
   * §4.1–§4.5 as the shared lifecycle runs it: no opening frame and no session id (the request id is
   * ours); the final checkpoint is answered after all prior audio is processed, then the client closes
   * (the server never does).
   */
  protected protocol(): StreamProtocol {
    return {
      url: (req) => this.url(req),
      headers: { Authorization: this.opts.apiKey }, // raw key, no scheme (§4.1)
      finalize: {
        message: JSON.stringify({ checkpoint_id: FINAL_CHECKPOINT }),
        awaiting: 'final checkpoint echo',
        after: 'the final checkpoint',
        limits: finalizeLimits(this.opts, this.opts.finalTimeoutMs),
      },
      start: (req, sink) => this.session(req, sink),
    };
  }

  private url(req: TranscribeRequest): string {
    const url = streamUrl(this.opts.baseUrl, FIREWORKS_STREAMING_PATH);
    url.searchParams.set('response_format', 'verbose_json');
    // §4.2: start/end on words and segments only with timestamp_granularities.
    url.searchParams.set('timestamp_granularities', 'word,segment');
    if (req.model) url.searchParams.set('model', req.model);
    for (const [k, v] of Object.entries(req.options)) {
      if (!RESERVED.has(k)) url.searchParams.set(k, Array.isArray(v) ? v.join(',') : String(v));
    }
    return url.toString();
  }

  /** One session's frames: the checkpoint echo, error frames, and the §4.4 state dict of segments. */
  private session(req: TranscribeRequest, sink: StreamSink): StreamHandler {
    const state = new Map<number, FwSegment>();
    let serverError: string | undefined;
    return {
      onMessage: (msg) => {
        if (msg.checkpoint_id === FINAL_CHECKPOINT || (msg.object === 'stt.output.trace' && msg.trace_id === FINAL_CHECKPOINT)) {
          sink.finalized();
          return;
        }
        if (typeof msg.error === 'string' || (msg.error && typeof msg.error === 'object')) {
          serverError = redact(typeof msg.error === 'string' ? msg.error : JSON.stringify(msg.error), [this.opts.apiKey]).slice(0, 200);
          return;
        }
        if (!Array.isArray(msg.segments)) return;
        // §4.4 state dict: overwrite by id, insert new ids; ids may be strings ("0").
        for (const seg of msg.segments as FwSegment[]) {
          const id = Number(seg?.id);
          if (!Number.isFinite(id)) continue;
          state.set(id, seg);
          report(id, seg, sink);
        }
      },
      closeError: (info) => this.closeError(info, serverError),
      transcript: (requestId, duration) => this.transcript(req, requestId, state, duration),
    };
  }

  private transcript(req: TranscribeRequest, requestId: string, state: Map<number, FwSegment>, duration: number): Transcript {
    const segments = segmentsInOrder(state, toWords, (seg) => seg.text?.trim());
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

/** A segment's events: the first text, and, once its last word is final, the audio it covers and the final result. */
function report(id: number, seg: FwSegment, sink: StreamSink): void {
  const words = seg.words ?? [];
  if (sink.firstResultPending && (seg.text ?? '').trim()) sink.firstResult(() => words.at(-1)?.end ?? seg.end ?? 0);
  // A segment is final when its last word is (the LiveKit plugin's rule, §4.4).
  if (!(words.length && words.at(-1)!.is_final === true)) return;
  sink.finalThrough(words.at(-1)!.end ?? seg.end ?? 0);
  sink.final(id, () => ({ start: words[0]!.start ?? seg.start ?? 0, end: words.at(-1)!.end ?? seg.end ?? 0, segment: segmentFromWords(toWords(seg)) }));
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
