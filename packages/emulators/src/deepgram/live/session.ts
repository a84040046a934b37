/**
 * One live session (providers.md §2, §7.3): frames in (audio, KeepAlive, Finalize, CloseStream), the
 * real-time accounting of received audio (strict pacing, audio-time faults), the idle close, and the
 * end of the stream. Audio goes ingest → pacing gate → transcriber; results go out through `send`.
 * With `multichannel=true` on raw audio of `channels=N` there is one transcriber per channel, each
 * sending its own Results (`channel_index: [c, N]`); otherwise one transcriber hears the mono mix.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { WebSocket } from 'ws';
import { delay, type FrameLog } from '../../kit';
import { closeReason, RateMonitor } from '../../kit';
import { NET0000_REASON, NET0001_REASON, PACING_CLOSE_CODE, serviceTimeFor, type DeepgramLiveRecord, type ResolvedDeepgramOptions } from '../options';
import { SNIFFED_ENCODINGS } from '../query';
import { liveMetadata } from '../results';
import { liveChannels, openIngest, PacingGate, type Ingest } from './ingest';
import { LiveTranscriber } from './transcriber';

export interface LiveHooks {
  takeFaults(): { dropAfterAudioMs: number | undefined; net0000AfterAudioMs: number | undefined };
  /** The session's recogniser goes back to the pool (called once, when the session stops). */
  releaseRecogniser(): void;
  /** The socket is closed (called once). */
  onDone(): void;
}

export class LiveSession {
  private readonly requestId: string;
  private readonly hash = createHash('sha256');
  private readonly rate = new RateMonitor();
  private readonly faults: ReturnType<LiveHooks['takeFaults']>;
  private readonly gate: PacingGate;
  /** One per transcribed channel (one for mono or a mix). */
  private readonly transcribers: LiveTranscriber[];
  private ingest: Ingest | undefined;
  private idle: NodeJS.Timeout | undefined;
  /** CloseStream or the idle close is under way: frames are ignored. */
  private closing = false;
  /** The close was sent or the socket closed: nothing more goes out. */
  private ended = false;
  private finished = false;
  private stopped = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly rec: DeepgramLiveRecord,
    private readonly q: URLSearchParams,
    private readonly options: ResolvedDeepgramOptions,
    private readonly frames: FrameLog,
    private readonly hooks: LiveHooks,
  ) {
    this.requestId = rec.requestId;
    this.faults = hooks.takeFaults();
    this.gate = new PacingGate(options, () => rec.firstAudioAt, (pcm) => pcm.forEach((p, c) => this.transcribers[c]?.feed(p)));
    const { outputs } = liveChannels(q);
    this.transcribers = Array.from(
      { length: outputs },
      (_, c) =>
        new LiveTranscriber(
          { q, model: rec.model, requestId: rec.requestId, send: (m) => this.send(m), channel: [c, outputs] },
          { interimEveryMs: options.interimEveryMs, maxSegmentMs: options.maxSegmentMs, onError: () => this.serverClose(1011, NET0000_REASON) },
        ),
    );
    ws.on('message', (data, isBinary) => this.onFrame(toBuffer(data), isBinary));
    ws.on('close', (code, reason) => this.onClosed(code, reason.toString('utf8')));
    ws.on('error', () => undefined);
    this.armIdle();
  }

  kill(): void {
    this.ws.terminate();
    this.stop();
  }

  /** Destroy the socket without a close frame (the client sees 1006). */
  drop(): void {
    if (this.ended) return;
    this.rec.closedBy = 'drop';
    this.rec.closeCode = 1006;
    this.ws.terminate();
  }

  // -- frames in

  private onFrame(buf: Buffer, isBinary: boolean): void {
    const r: Parameters<FrameLog['record']>[0] = { session: this.requestId, direction: 'in', kind: isBinary ? 'binary' : 'text', size: buf.length };
    const type = isBinary ? undefined : messageType(buf);
    if (type) r.type = type;
    this.frames.record(r);
    if (this.ended) return;
    if (this.closing) {
      // §7.3: frames after CloseStream are ignored.
      if (this.rec.closeStreamAt !== undefined) this.rec.ignoredFrames += 1;
      return;
    }
    if (isBinary) this.onAudio(buf);
    else this.onText(buf.toString('utf8'));
  }

  private onText(text: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      return this.serverClose(1011, 'Invalid frame sent: text frame is not valid JSON');
    }
    const type = msg && typeof msg === 'object' && !Array.isArray(msg) ? (msg as { type?: unknown }).type : undefined;
    // After the first audio any frame resets the idle timer; before it only audio does (§2.6).
    if (this.rec.firstAudioAt !== undefined) this.armIdle();
    switch (type) {
      case 'KeepAlive':
        return; // no reply (§2.3)
      case 'Finalize':
        // §2.3: `{"type":"Finalize","channel":c}` flushes that channel only.
        void this.finalize((msg as { channel?: unknown }).channel);
        return;
      case 'CloseStream':
        void this.closeStream();
        return;
      default:
        return this.serverClose(1011, closeReason(`Invalid frame sent: unknown message type ${JSON.stringify(type ?? null)}`));
    }
  }

  private onAudio(buf: Buffer): void {
    if (buf.length === 0) {
      this.rec.clientBugs.push('empty-binary-frame');
      if (this.options.emptyFrame === 'end-of-stream') return void this.closeStream();
      return this.serverClose(1008, 'DATA-0000: empty binary frame (the legacy end-of-stream signal; send {"type":"CloseStream"})');
    }
    const encoding = this.q.get('encoding');
    if (encoding !== null && !SNIFFED_ENCODINGS.includes(encoding) && looksLikeJson(buf)) {
      this.rec.clientBugs.push('json-in-binary-frame');
      return this.serverClose(1008, 'DATA-0000: could not decode the audio (a JSON message was sent as a binary frame)');
    }
    const first = this.rec.firstAudioAt === undefined;
    if (first) this.rec.firstAudioAt = performance.now();
    this.armIdle();
    this.hash.update(buf);
    this.rec.audioBytes += buf.length;
    if (first) {
      this.ingest = openIngest(this.q, {
        onPcm: (pcm) => !this.ended && this.gate.push(pcm),
        onDecodedSeconds: (s) => this.onReceivedSeconds(s),
        onUndecodable: (reason) => this.serverClose(1008, reason),
      });
    }
    if (!this.ingest) return;
    this.ingest.write(buf);
    if (this.ingest.byteRate) this.onReceivedSeconds(buf.length / this.ingest.byteRate);
  }

  /** Real-time accounting of received audio: strict pacing and the audio-time faults. */
  private onReceivedSeconds(seconds: number): void {
    const { audioSeconds, elapsedSeconds } = this.rate.add(seconds);
    this.rec.audioSeconds = audioSeconds;
    this.rec.maxAheadSeconds = Math.max(this.rec.maxAheadSeconds, audioSeconds - elapsedSeconds);
    const limit = this.options.maxRealtimeFactor * elapsedSeconds + this.options.burstAllowanceMs / 1000;
    if (this.options.strictPacing && audioSeconds > limit) {
      this.rec.clientBugs.push('too-fast');
      return this.serverClose(
        PACING_CLOSE_CODE,
        closeReason(`Audio sent faster than real time: ${audioSeconds.toFixed(1)} s of audio in ${elapsedSeconds.toFixed(1)} s (limit ${this.options.maxRealtimeFactor}x)`),
      );
    }
    const ms = audioSeconds * 1000;
    if (this.faults.dropAfterAudioMs !== undefined && ms >= this.faults.dropAfterAudioMs) return this.drop();
    if (this.faults.net0000AfterAudioMs !== undefined && ms >= this.faults.net0000AfterAudioMs) this.serverClose(1011, NET0000_REASON);
  }

  // -- control messages and the end of the stream

  private async finalize(channel: unknown): Promise<void> {
    await this.gate.drained();
    if (this.ended || this.closing) return;
    const only = typeof channel === 'number' ? this.transcribers[channel] : undefined;
    await Promise.all((only ? [only] : this.transcribers).map((t) => t.finalize()));
  }

  /** §2.7: remaining finals → exactly one Metadata → close 1000. */
  private async closeStream(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.rec.closeStreamAt = performance.now();
    clearTimeout(this.idle);
    try {
      const serviceMs = serviceTimeFor(this.options, 'live');
      if (serviceMs) await delay(serviceMs);
      if (this.ended) return;
      await this.ingest?.end();
      await this.gate.drained();
      if (this.ended) return;
      await Promise.all(this.transcribers.map((t) => t.finish('finalize')));
      if (this.ended) return;
      // Seconds of audio (per channel: every channel heard as much).
      const seconds = this.rec.audioBytes > 0 ? this.transcribers[0]!.fedSeconds : null;
      this.send(liveMetadata(this.q, this.rec.model, this.requestId, this.hash.digest('hex'), seconds));
      this.rec.metadataSent = true;
      this.serverClose(1000, '');
    } catch {
      this.serverClose(1011, NET0000_REASON);
    }
  }

  /**
   * §2.6 NET-0001, as the service does it: the audio already received is finalised first (its final
   * Results go out), then the close. Audio still waiting at the pacing gate is fed at once.
   */
  private async idleClose(): Promise<void> {
    this.rec.clientBugs.push('idle');
    this.closing = true;
    try {
      await this.ingest?.end();
      this.gate.release();
      if (!this.ended) await Promise.all(this.transcribers.map((t) => t.finish('idle')));
    } finally {
      this.serverClose(1011, NET0001_REASON);
    }
  }

  private send(msg: Record<string, unknown>): void {
    if (this.ended || this.ws.readyState !== this.ws.OPEN) return;
    const data = JSON.stringify(msg);
    this.frames.record({ session: this.requestId, direction: 'out', kind: 'text', size: Buffer.byteLength(data), type: String(msg.type) });
    this.ws.send(data);
  }

  // -- timers and closing

  private armIdle(): void {
    clearTimeout(this.idle);
    if (this.closing || this.ended) return;
    this.idle = setTimeout(() => void this.idleClose(), this.options.idleTimeoutMs);
  }

  private serverClose(code: number, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.rec.closeCode = code;
    this.rec.closeReason = reason;
    this.rec.closedBy = 'server';
    this.frames.record({ session: this.requestId, direction: 'out', kind: 'text', size: Buffer.byteLength(reason), type: `close ${code}` });
    this.ws.close(code, reason);
    this.stop();
    // A peer that never answers the close frame is cut off.
    setTimeout(() => this.ws.terminate(), 5000).unref();
  }

  private onClosed(code: number, reason: string): void {
    if (!this.ended) {
      this.ended = true;
      if (this.rec.closedBy !== 'drop') {
        this.rec.closedBy = 'client';
        this.rec.closeCode = code;
        this.rec.closeReason = reason;
      }
    }
    this.stop();
    if (!this.finished) {
      this.finished = true;
      this.rec.done = true;
      this.hooks.onDone();
    }
  }

  /** Timers, decoder and recogniser stop; the recogniser goes back to the pool (once). */
  private stop(): void {
    clearTimeout(this.idle);
    this.gate.stop();
    this.ingest?.destroy();
    for (const t of this.transcribers) t.kill();
    if (this.stopped) return;
    this.stopped = true;
    this.hooks.releaseRecogniser();
  }
}

function messageType(buf: Buffer): string | undefined {
  try {
    const t = (JSON.parse(buf.toString('utf8')) as { type?: unknown })?.type;
    return typeof t === 'string' ? t : undefined;
  } catch {
    return undefined; // recorded without a type; handled by onText
  }
}

export function toBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** A binary frame holding a JSON object (e.g. KeepAlive sent as binary) is not audio (§2.3). */
function looksLikeJson(buf: Buffer): boolean {
  if (buf.length > 65_536 || buf.length < 2) return false;
  const s = buf.toString('utf8').trim();
  if (!s.startsWith('{') || !s.endsWith('}')) return false;
  try {
    JSON.parse(s);
    return true;
  } catch {
    return false;
  }
}
