/**
 * Deepgram speech-to-text client: pre-recorded `POST /v1/listen` (batch) and live `wss /v1/listen`
 * (stream), normalised into the Transcript model. Wire reference: providers.md §1, §2, Appendix A.
 *
 * Batch streams the original object bytes as the request body (or, with `batchBody: 'url'`, sends a
 * presigned URL for Deepgram to fetch). Stream decodes to 16 kHz mono linear16 (with the job option
 * `multichannel`, the source's channels interleaved, `channels=N`), prefetches the first
 * chunk before opening the socket, paces chunks on absolute deadlines, keeps the socket alive while
 * the source stalls, never sends an empty frame, and ends with CloseStream → finals → Metadata →
 * close 1000 (§2.7), waiting for that as long as Deepgram makes progress. Metadata's `sha256` must
 * be the sha256 of the audio bytes this client sent, else CHECKSUM_MISMATCH (retryable).
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import {
  ChecksumMismatchError,
  ConfigError,
  EmptyDecodeError,
  ProviderProtocolError,
  ProviderRejectedError,
  ProviderTimeoutError,
  ProviderUnavailableError,
  ScribeError,
  toScribeError,
} from '../../domain/errors';
import { wantsMultichannel } from '../../domain/catalogue';
import { chunkBytesFor, pacedSend, pcmByteRate, rechunk, PCM_SAMPLE_RATE, type PacingReport } from '../../domain/pacing';
import { segmentFromWords, type Segment, type Transcript, type Word } from '../../domain/transcript';
import type { AudioForm, Provider, ProviderResult, SessionContext, SessionEvent, SessionStats, TranscribeRequest } from '../../ports/provider';
import { postStreaming } from './http-upload';
import { within } from './shared/deferred';
import { finalizeLimits, finalizeWithinProgress } from './shared/finalize-wait';
import { abortError, httpStatusError } from './shared/http-errors';
import { redact } from './shared/redact';
import { firstHeader, WsSession, type WsRefusal } from './shared/ws-socket';

const PROVIDER = 'deepgram';

export interface DeepgramProviderOptions {
  apiKey: string;
  /** https://api.deepgram.com (or an emulator); the live URL is the same host with ws(s)://. */
  baseUrl: string;
  /**
   * Pre-recorded body. Default `stream`: the bytes are streamed from storage, so nothing but this
   * worker needs to reach the bucket. `url` sends a presigned URL instead; that needs the bucket to be
   * reachable from Deepgram's network and fails intermittently with REMOTE_CONTENT_ERROR when
   * Deepgram's fetch of the URL fails (deepgram-js-sdk#263, providers.md §6 item 13).
   */
  batchBody?: 'stream' | 'url';
  /** Bound on one pre-recorded request (upload + processing). Deepgram itself cancels at 10 min (20 min Whisper) with 504. */
  timeoutMs?: number;
  /** Live: audio per binary frame (default 100 ms; §2.9 recommends 20–100 ms). */
  chunkMs?: number;
  /** Live: send a KeepAlive after this long without audio going out (default 4000; §2.3 says 3–5 s). */
  keepAliveMs?: number;
  /** Live: bound on TCP connect + upgrade. */
  connectTimeoutMs?: number;
  /**
   * Live: the wait for CloseStream → final Results → Metadata → close 1000 is bounded by progress
   * (shared/finalize-wait `withinProgress`): it fails (PROVIDER_TIMEOUT, retryable) once Deepgram has
   * sent nothing at all for this long (FINALIZE_IDLE_MS, default 20 000), or after `finalizeIdleMs +
   * finalizeMsPerAudioSecond × audio seconds not yet in a final result` in all.
   */
  finalizeIdleMs?: number;
  /** Live: FINALIZE_MS_PER_AUDIO_SECOND (default 1000); see `finalizeIdleMs`. */
  finalizeMsPerAudioSecond?: number;
  /** Live: explicit per-client override of `finalizeIdleMs` (the idle bound of the CloseStream wait). */
  closeTimeoutMs?: number;
  /** Without `utterances` in the response, a pause this long (s) starts a new segment (Deepgram's utt_split default). */
  segmentGapSeconds?: number;
}

/** Deepgram word as sent in both responses (§1.3, §2.4). */
interface DgWord {
  word: string;
  start: number;
  end: number;
  confidence: number;
  punctuated_word?: string;
  speaker?: number;
}

interface DgAlternative {
  transcript: string;
  confidence: number;
  words: DgWord[];
}

interface DgPrerecordedResponse {
  metadata: { request_id: string; duration: number; channels: number };
  results: {
    channels: Array<{ alternatives: DgAlternative[] }>;
    utterances?: Array<{ start: number; end: number; confidence: number; transcript: string; channel: number; speaker?: number; words: DgWord[] }>;
  };
}

interface DgResults {
  type: 'Results';
  /** `[this channel, total channels]` (§2.4). */
  channel_index?: [number, number];
  start: number;
  duration: number;
  is_final?: boolean;
  speech_final?: boolean;
  channel: { alternatives: DgAlternative[] };
}

// ---- wire helpers (exported for tests and the other Deepgram paths) -----------------------------------

/** One Deepgram error body, whichever of the three shapes it came in (§1.4). */
export interface DeepgramErrorInfo {
  code?: string;
  message: string;
  requestId?: string;
}

/** Parse a Deepgram error body: legacy `{err_code, err_msg}`, modern `{category, message, details}`, or text. */
export function parseDeepgramError(body: string): DeepgramErrorInfo {
  const trimmed = body.trim();
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch {
    return { message: trimmed.slice(0, 500) };
  }
  if (typeof parsed === 'string') return { message: parsed.slice(0, 500) };
  if (!parsed || typeof parsed !== 'object') return { message: trimmed.slice(0, 500) };
  const o = parsed as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const info: DeepgramErrorInfo = { message: '' };
  const requestId = str(o.request_id);
  if (requestId) info.requestId = requestId;
  if (str(o.err_code) !== undefined || str(o.err_msg) !== undefined) {
    const code = str(o.err_code);
    if (code) info.code = code;
    info.message = str(o.err_msg) ?? '';
  } else if (str(o.category) !== undefined) {
    info.code = str(o.category)!;
    const message = str(o.message) ?? '';
    const details = str(o.details);
    info.message = details && details !== message ? `${message} (${details})` : message;
  } else {
    info.message = str(o.message) ?? str(o.error) ?? trimmed.slice(0, 500);
  }
  return info;
}

/**
 * A Deepgram HTTP failure as a typed error (Appendix A). Beyond the common mapping: 422 (upload
 * interrupted) and REMOTE_CONTENT_ERROR (Deepgram's fetch of a URL failed, intermittent per
 * js-sdk#263) are retryable; 504 (processing cap exceeded) is a timeout.
 */
export function deepgramHttpError(status: number, info: DeepgramErrorInfo, retryAfter: string | null | undefined, where = ''): ScribeError {
  const detail = [where, info.code, info.message].filter(Boolean).join(': ') + (info.requestId ? ` (request_id ${info.requestId})` : '');
  const msg = `${PROVIDER}: HTTP ${status}${detail ? ` ${detail}` : ''}`;
  const details: Record<string, unknown> = {};
  if (info.code) details.errCode = info.code;
  if (info.requestId) details.requestId = info.requestId;
  if (status === 504) return new ProviderTimeoutError(msg, { status, details });
  if (status === 422 || info.code === 'REMOTE_CONTENT_ERROR') return new ProviderUnavailableError(msg, { status, details });
  const err = httpStatusError(PROVIDER, status, detail, retryAfter);
  return Object.keys(details).length ? Object.assign(err, { details }) : err;
}

/**
 * A live close as a typed error (§2.6, Appendix A): 1008/1002/1003/1007 and DATA-0000 are client-side
 * problems (not retried); NET-0001 is an idle timeout; 1000 without Metadata, 1006, 1011, 1012, 1013
 * and anything else are retryable.
 */
export function deepgramCloseError(code: number, reason: string, context: string): ScribeError {
  const msg = `${PROVIDER}: WebSocket closed ${code}${reason ? ` "${reason}"` : ''} ${context}`;
  if ([1002, 1003, 1007, 1008].includes(code) || /data-?0000/i.test(reason)) return new ProviderRejectedError(msg, { status: code });
  if (/net-?0001/i.test(reason)) return new ProviderTimeoutError(msg, { status: code });
  return new ProviderUnavailableError(msg, { status: code });
}

/**
 * Query string per §1.2: booleans as `true`/`false`, arrays as repeated keys; `fixed` wins over
 * options. `tag` (the job's batch id) is added as one more `tag` beside any the options give, so
 * Deepgram's usage API can be reconciled with the fleet's usage book per batch.
 */
export function listenQuery(fixed: Record<string, string>, options: TranscribeRequest['options'], tag?: string): URLSearchParams {
  const q = new URLSearchParams(fixed);
  for (const [key, value] of Object.entries(options)) {
    if (key in fixed) continue;
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) q.append(key, typeof v === 'boolean' ? (v ? 'true' : 'false') : String(v));
  }
  if (tag && !q.getAll('tag').includes(tag)) q.append('tag', tag);
  return q;
}

function toWord(w: DgWord): Word {
  const out: Word = { word: w.word, start: w.start, end: w.end, confidence: w.confidence };
  if (w.punctuated_word !== undefined) out.punctuated_word = w.punctuated_word;
  if (w.speaker !== undefined) out.speaker = w.speaker;
  return out;
}

/** A segment of one speaker's words carries that speaker (diarized responses). */
function withSpeaker(seg: Segment, speaker?: number): Segment {
  const only = speaker ?? seg.words[0]?.speaker;
  if (only !== undefined && seg.words.every((w) => w.speaker === undefined || w.speaker === only)) seg.speaker = only;
  return seg;
}

/** Split words into segments where the pause between two words is at least `gap` seconds, or the speaker changes. */
function splitAtPauses(words: Word[], gap: number, channel?: number): Segment[] {
  const segments: Segment[] = [];
  let current: Word[] = [];
  for (const w of words) {
    const prev = current[current.length - 1];
    if (prev && (w.start - prev.end >= gap || w.speaker !== prev.speaker)) {
      segments.push(withSpeaker(segmentFromWords(current, channel)));
      current = [];
    }
    current.push(w);
  }
  if (current.length) segments.push(withSpeaker(segmentFromWords(current, channel)));
  return segments;
}

/** §1.3 response → Transcript: utterances when present, else channel words split at pauses. */
export function prerecordedToTranscript(json: DgPrerecordedResponse, model: string, segmentGapSeconds = 0.8): Transcript {
  const md = json.metadata;
  const channels = json.results?.channels ?? [];
  let segments: Segment[];
  if (Array.isArray(json.results?.utterances)) {
    segments = json.results.utterances
      .filter((u) => u.words.length)
      .map((u) => {
        const seg = segmentFromWords(u.words.map(toWord), channels.length > 1 ? u.channel : undefined);
        if (u.transcript) seg.text = u.transcript;
        seg.confidence = u.confidence;
        return withSpeaker(seg, u.speaker);
      });
  } else {
    // Channel 0 only, unless the request asked for one result per channel (multichannel).
    const used = channels.length > 1 ? channels : channels.slice(0, 1);
    segments = used.flatMap((ch, c) => splitAtPauses((ch.alternatives[0]?.words ?? []).map(toWord), segmentGapSeconds, used.length > 1 ? c : undefined));
  }
  segments.sort((a, b) => a.start - b.start || (a.channel ?? 0) - (b.channel ?? 0));
  return { provider: PROVIDER, model, requestId: md.request_id, duration: md.duration, channels: md.channels, segments };
}

// ---- the provider -------------------------------------------------------------------------------------

export class DeepgramProvider implements Provider {
  readonly name = PROVIDER;
  private readonly base: string;

  constructor(private readonly opts: DeepgramProviderOptions) {
    if (!opts.apiKey) throw new ConfigError('deepgram: an API key is required');
    if (!/^(https?|wss?):\/\//.test(opts.baseUrl)) throw new ConfigError(`deepgram: baseUrl must be an http(s) URL, got ${JSON.stringify(opts.baseUrl)}`);
    this.base = opts.baseUrl.replace(/\/+$/, '');
  }
  audioForm(mode: 'batch' | 'stream'): AudioForm {
    return mode === 'stream' ? 'pcm' : this.opts.batchBody === 'url' ? 'url' : 'original';
  }


  transcribe(req: TranscribeRequest, ctx: SessionContext): Promise<ProviderResult> {
    return req.mode === 'stream' ? this.stream(req, ctx) : this.batch(req, ctx);
  }

  private get authHeader(): string {
    return `Token ${this.opts.apiKey}`;
  }

  private clean(text: string): string {
    return redact(text, [this.opts.apiKey]);
  }

  // ---- pre-recorded --------------------------------------------------------------------------------

  private async batch(req: TranscribeRequest, ctx: SessionContext): Promise<ProviderResult> {
    if (ctx.signal.aborted) throw abortError(PROVIDER, ctx.signal);
    const timeoutMs = this.opts.timeoutMs ?? 20 * 60_000;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = AbortSignal.any([ctx.signal, timeout]);
    const url = `${this.base.replace(/^ws/, 'http')}/v1/listen?${listenQuery({ model: req.model }, req.options, req.tag)}`;
    const stats: SessionStats = { requestId: '', bytesSent: 0, chunksSent: 0, finalResults: 0, reconnects: 0 };
    let source: Readable | undefined;
    try {
      const headers: Record<string, string> = { authorization: this.authHeader };
      let body: AsyncIterable<Uint8Array>;
      if ((this.opts.batchBody ?? 'stream') === 'url') {
        if (!req.audio.presignedUrl) throw new ConfigError('deepgram: batchBody "url" needs an audio input that can presign a URL');
        const json = Buffer.from(JSON.stringify({ url: await req.audio.presignedUrl() }));
        stats.bytesSent = json.length;
        stats.chunksSent = 1;
        headers['content-type'] = 'application/json';
        headers['content-length'] = String(json.length);
        body = (async function* () {
          yield json;
        })();
      } else {
        const original = await req.audio.original(signal);
        source = original.stream;
        headers['content-type'] = original.contentType ?? 'application/octet-stream';
        body = countingBody(original.stream, stats);
      }
      // A refusal that arrives while the body is still going out (the server answers and closes
      // without reading it) is read and classified like any other answer.
      const res = await postStreaming(url, { headers, body, signal });
      const requestId = res.headers.get('dg-request-id') ?? '';
      const text = res.text;
      if (res.status !== 200) {
        const info = parseDeepgramError(text);
        if (!info.requestId && requestId) info.requestId = requestId;
        if (!info.message) info.message = res.headers.get('dg-error') ?? res.statusText;
        info.message = this.clean(info.message);
        throw deepgramHttpError(res.status, info, res.headers.get('retry-after'));
      }
      let json: DgPrerecordedResponse;
      try {
        json = JSON.parse(text) as DgPrerecordedResponse;
      } catch (e) {
        throw new ProviderProtocolError(`deepgram: HTTP 200 with a body that is not JSON (${(e as Error).message})`, { status: 200 });
      }
      if (!json?.metadata || !json.results) throw new ProviderProtocolError('deepgram: HTTP 200 without metadata/results', { status: 200 });
      const transcript = prerecordedToTranscript(json, req.model, this.opts.segmentGapSeconds);
      stats.requestId = transcript.requestId || requestId;
      ctx.onEvent?.({ type: 'session:open', requestId: stats.requestId });
      const first = transcript.segments[0];
      if (first) ctx.onEvent?.({ type: 'session:first-result', audioSeconds: first.end });
      transcript.segments.forEach((s, index) => ctx.onEvent?.({ type: 'session:final', index, start: s.start, end: s.end }));
      stats.finalResults = transcript.segments.length;
      ctx.onEvent?.({ type: 'session:closed', code: 200 });
      return { transcript, stats };
    } catch (err) {
      if (ctx.signal.aborted) throw abortError(PROVIDER, ctx.signal);
      if (timeout.aborted) throw new ProviderTimeoutError(`deepgram: no answer to the pre-recorded request within ${timeoutMs} ms`, { cause: err });
      if (err instanceof ScribeError) throw err;
      // No response at all (refused, reset before any answer) or the body source failed.
      const e = err as { code?: string; message?: string } | undefined;
      throw new ProviderUnavailableError(`deepgram: pre-recorded request failed (${this.clean(e?.code ?? e?.message ?? String(err))})`, { cause: err });
    } finally {
      source?.destroy();
    }
  }

  // ---- live ----------------------------------------------------------------------------------------

  private async stream(req: TranscribeRequest, ctx: SessionContext): Promise<ProviderResult> {
    if (ctx.signal.aborted) throw abortError(PROVIDER, ctx.signal);
    const chunkMs = this.opts.chunkMs ?? 100;
    const keepAliveMs = this.opts.keepAliveMs ?? 4000;
    const stop = new AbortController(); // aborted when the server closes early or on failure
    const signal = AbortSignal.any([ctx.signal, stop.signal]);
    const stats: SessionStats = { requestId: '', bytesSent: 0, chunksSent: 0, finalResults: 0, reconnects: 0 };
    let source: AsyncIterator<Buffer> | undefined;
    let live: WsSession | undefined;
    let keepAlive: NodeJS.Timeout | undefined;
    let closeStreamSent = false;
    let closedReported = false;
    const reportClosed = (code?: number, reason?: string) => {
      if (closedReported) return;
      closedReported = true;
      const e: { type: 'session:closed'; code?: number; reason?: string } = { type: 'session:closed' };
      if (code !== undefined) e.code = code;
      if (reason) e.reason = this.clean(reason);
      ctx.onEvent?.(e);
    };
    try {
      // §2.2: with `multichannel`, the source's channels go out interleaved as `channels=N` and
      // Deepgram answers per channel (`channel_index`); otherwise (or when this audio input cannot
      // keep channels) the audio is decoded to mono. A mono source is one channel either way.
      let channels = 1;
      let pcm: AsyncIterable<Buffer>;
      if (wantsMultichannel(req.options) && req.audio.pcmChannels) {
        const decoded = await req.audio.pcmChannels(signal);
        channels = decoded.channels;
        pcm = decoded.pcm;
      } else pcm = req.audio.pcm(signal);
      // Chunks are `chunkMs` of every channel, in whole frames, paced at the N-channel byte rate.
      const byteRate = pcmByteRate(channels);
      const chunkSource = rechunk(pcm, chunkBytesFor(chunkMs, byteRate, 2 * channels))[Symbol.asyncIterator]();
      source = chunkSource;
      const query = listenQuery({ encoding: 'linear16', sample_rate: String(PCM_SAMPLE_RATE), channels: String(channels), model: req.model }, req.options, req.tag);
      const url = `${this.base.replace(/^http/, 'ws')}/v1/listen?${query}`;
      // Appendix A: the first audio must reach Deepgram within 10 s of open, so the first chunk is
      // fetched (S3 read + decoder start) before the socket is opened.
      const first = await chunkSource.next();
      if (first.done || first.value.length === 0) throw new EmptyDecodeError('deepgram: the audio decoded to nothing; nothing to stream');
      const firstChunk: Buffer = first.value;
      live = await this.openLive(url, signal);
      const sock = live;
      const requestId = sock.upgradeHeader('dg-request-id') ?? '';
      stats.requestId = requestId;
      ctx.onEvent?.({ type: 'session:open', requestId });

      // Finals accumulate; interims are never kept (§2.5).
      const segments: Segment[] = [];
      let metadata: { duration?: number; request_id?: string; sha256?: unknown } | undefined;
      let firstResult = false;
      let protocolError: string | undefined;
      const finalThrough = new Array<number>(channels).fill(0); // audio covered by final Results, per channel
      const sentHash = createHash('sha256'); // of exactly the audio bytes handed to the socket
      onText(sock, (msg) => {
        if (msg.type === 'Results') {
          const r = msg as unknown as DgResults;
          const alt = r.channel?.alternatives?.[0];
          if (!firstResult && alt?.transcript) {
            firstResult = true;
            ctx.onEvent?.({ type: 'session:first-result', audioSeconds: r.start + r.duration });
          }
          if (!r.is_final) return;
          // Results of a multichannel stream say their channel; those of a mono one are channel 0 of 1.
          const c = r.channel_index?.[0] ?? 0;
          if (!Number.isInteger(c) || c < 0 || c >= channels) {
            protocolError ??= `deepgram: a final Results message has channel_index ${JSON.stringify(r.channel_index)} in a stream of ${channels} channel(s)`;
            return;
          }
          stats.finalResults += 1;
          if (typeof r.start === 'number' && typeof r.duration === 'number') finalThrough[c] = Math.max(finalThrough[c]!, r.start + r.duration);
          const words = (alt?.words ?? []).map(toWord);
          if (!words.length) return;
          const seg = segmentFromWords(words, channels > 1 ? c : undefined);
          if (alt?.transcript) seg.text = alt.transcript;
          // A multichannel final says how many channels there are: a checkpoint resumes where all are final.
          const e: SessionEvent = { type: 'session:final', index: segments.length, start: seg.start, end: seg.end, segment: seg };
          if (channels > 1) e.channels = channels;
          ctx.onEvent?.(e);
          segments.push(seg);
        } else if (msg.type === 'Metadata') {
          metadata = msg as { duration?: number; request_id?: string; sha256?: unknown };
        }
      });
      // A close before CloseStream (idle, DATA-0000, NET-0000, drop, pacing) stops the sender at once.
      void sock.closed.then((c) => {
        if (!closeStreamSent) stop.abort(deepgramCloseError(c.code, this.clean(c.reason), 'while streaming audio'));
      });

      // KeepAlive while no audio goes out (e.g. the source stalls), on real time: it is about the
      // server's 10 s idle window, not the pacing clock (§2.3, Appendix A).
      let lastOut = performance.now();
      const tick = () => {
        if (closeStreamSent || !sock.isOpen) return;
        const idle = performance.now() - lastOut;
        if (idle >= keepAliveMs) {
          lastOut = performance.now();
          sock.send(JSON.stringify({ type: 'KeepAlive' })).catch(() => undefined);
        }
        keepAlive = setTimeout(tick, Math.max(20, keepAliveMs - (performance.now() - lastOut)));
      };
      keepAlive = setTimeout(tick, keepAliveMs);

      async function* chunks(): AsyncGenerator<Buffer> {
        yield firstChunk;
        for (;;) {
          const r = await chunkSource.next();
          if (r.done) return;
          yield r.value;
        }
      }
      let pacing: PacingReport;
      let sendFailed = false;
      try {
        pacing = await pacedSend({
          chunks: chunks(),
          byteRate,
          clock: ctx.clock,
          signal,
          onLateness: (ms) => ctx.onEvent?.({ type: 'session:chunk-lateness', ms }),
          send: async (chunk) => {
            if (chunk.length === 0) return; // never an empty frame: it means end-of-stream (§2.3)
            await sock.send(chunk).catch((e: unknown) => {
              sendFailed = true;
              throw e;
            });
            lastOut = performance.now();
            sentHash.update(chunk);
            stats.bytesSent += chunk.length;
            stats.chunksSent += 1;
          },
        });
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        if (stop.signal.aborted) throw stop.signal.reason;
        // A send that failed because the server is closing: report the close code, not the send.
        const c = sock.closeState ?? (sendFailed ? await within(sock.closed, 2000, () => new Error('no close')).catch(() => undefined) : undefined);
        if (c) throw deepgramCloseError(c.code, this.clean(c.reason), 'while streaming audio');
        throw err;
      }
      stats.pacing = pacing;

      // §2.7: CloseStream only after the last audio frame was handed to the socket, then read on
      // until the final Results, the Metadata and the server's close 1000 (never close first).
      clearTimeout(keepAlive);
      closeStreamSent = true;
      if (!sock.isOpen) {
        const c = await sock.closed;
        throw deepgramCloseError(c.code, this.clean(c.reason), 'before CloseStream');
      }
      await sock.send(JSON.stringify({ type: 'CloseStream' }));
      const c = await finalizeWithinProgress(sock.closed, {
        provider: PROVIDER,
        awaiting: 'Metadata and close',
        after: 'CloseStream',
        clock: ctx.clock,
        limits: finalizeLimits(this.opts, this.opts.closeTimeoutMs),
        // Audio seconds (of every channel) not yet in a final: the channel furthest behind decides.
        pendingAudioSeconds: () => stats.bytesSent / byteRate - Math.min(...finalThrough),
        activity: (onFrame) => sock.onActivity(onFrame),
        signal: ctx.signal,
      });
      reportClosed(c.code, c.reason);
      if (c.code !== 1000 || !metadata) {
        throw deepgramCloseError(c.code, this.clean(c.reason), metadata ? 'after CloseStream' : 'after CloseStream without Metadata');
      }
      if (protocolError) throw new ProviderProtocolError(protocolError);
      // Integrity: Deepgram's sha256 of the audio it received must be that of what was sent.
      const sent = sentHash.digest('hex');
      if (typeof metadata.sha256 === 'string' && metadata.sha256.toLowerCase() !== sent) {
        throw new ChecksumMismatchError(
          `deepgram: Metadata sha256 ${this.clean(metadata.sha256.slice(0, 64))} of the audio Deepgram received differs from the sha256 ${sent} of the ${stats.bytesSent} bytes sent`,
          { details: { received: metadata.sha256.slice(0, 64), sent, bytesSent: stats.bytesSent, ...(metadata.request_id ? { requestId: metadata.request_id } : {}) } },
        );
      }
      const transcript: Transcript = {
        provider: PROVIDER,
        model: req.model,
        requestId: metadata.request_id ?? requestId,
        duration: typeof metadata.duration === 'number' ? metadata.duration : stats.bytesSent / byteRate,
        channels,
        // The channels' finals arrive interleaved: in time order (ties by channel), as a batch transcript.
        segments: channels > 1 ? segments.sort((a, b) => a.start - b.start || a.channel! - b.channel!) : segments,
      };
      return { transcript, stats };
    } catch (err) {
      if (ctx.signal.aborted) {
        if (live) reportClosed(1000, 'aborted by the caller');
        throw abortError(PROVIDER, ctx.signal);
      }
      if (live) reportClosed(live.closeState?.code, live.closeState?.reason);
      if (err instanceof ScribeError) throw err;
      if (stop.signal.aborted && stop.signal.reason instanceof ScribeError) throw stop.signal.reason;
      throw toScribeError(err);
    } finally {
      clearTimeout(keepAlive);
      if (!stop.signal.aborted) stop.abort(new Error('session over'));
      await source?.return?.(undefined).catch(() => undefined);
      // On success the server has closed already; on failure or abort, close our side.
      live?.shutdown();
    }
  }

  /** The live socket; `dg-request-id` comes with the 101. */
  private openLive(url: string, signal: AbortSignal): Promise<WsSession> {
    return WsSession.open({
      provider: PROVIDER,
      url,
      headers: { authorization: this.authHeader },
      signal,
      connectTimeoutMs: this.opts.connectTimeoutMs ?? 10_000,
      secrets: [this.opts.apiKey],
      refusal: (r) => this.liveRefusal(r),
    });
  }

  /**
   * §2.1: refusals are plain HTTP before the upgrade, with `dg-error` and `dg-request-id` headers and
   * an error body in one of the shapes of §1.4.
   */
  private liveRefusal({ status, headers, body }: WsRefusal): ScribeError {
    const info = parseDeepgramError(body);
    const dgError = firstHeader(headers, 'dg-error');
    if (dgError) info.message = dgError;
    const id = firstHeader(headers, 'dg-request-id');
    if (id && !info.requestId) info.requestId = id;
    info.message = this.clean(info.message);
    return deepgramHttpError(status, info, firstHeader(headers, 'retry-after'), 'at WebSocket upgrade');
  }
}

/** A streamed request body that counts what went out (pull-based: storage is read as the socket takes it). */
async function* countingBody(stream: Readable, stats: SessionStats): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      stats.bytesSent += chunk.length;
      stats.chunksSent += 1;
      yield chunk;
    }
  } finally {
    stream.destroy();
  }
}

/** Deepgram's JSON text frames (it sends no other text): `fn` runs for each one that is an object. */
function onText(sock: WsSession, fn: (msg: { type?: string } & Record<string, unknown>) => void): void {
  sock.onMessage((data, isBinary) => {
    if (isBinary) return;
    try {
      const msg = JSON.parse(data.toString()) as unknown;
      if (msg && typeof msg === 'object') fn(msg as { type?: string } & Record<string, unknown>);
    } catch {
      // not JSON: ignore (Deepgram only sends JSON text frames)
    }
  });
}
