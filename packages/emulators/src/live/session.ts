/**
 * One accepted WebSocket session of a streaming emulator, the part every provider shares: frames in
 * (logged, binary vs text), JSON frames out (logged), the server's ways of ending it (a close frame, or
 * a dropped socket the client sees as 1006), timers that die with it, and its end bookkeeping — the
 * recogniser slot and the per-key count are given back exactly once, before 'session-closed' is told.
 */
import type { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { RawData, WebSocket } from 'ws';
import type { FrameLog } from '../kit';
import { closeReason } from '../kit';

/** What every streaming emulator records of a session (`sessions()`, 'session-open' / 'session-closed'). */
export interface LiveSessionInfo {
  id: string;
  query: Record<string, string>;
  /** performance.now() at the upgrade. */
  openedAt: number;
  closedAt?: number;
  closeCode?: number;
  closeReason?: string;
  /** Seconds of audio received. */
  audioSeconds: number;
}

export interface LiveSessionContext {
  frames: FrameLog;
  events: EventEmitter;
}

export function toBuffer(data: RawData): Buffer {
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
}

export class LiveSession {
  /** Set once the session is over for the emulator (a server close, a drop, or the client's close). */
  ended = false;
  /** Whether the emulator ended it (close frame or drop), not the client. */
  endedByServer = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly finishers: Array<() => void> = [];
  private readonly closers: Array<() => void> = [];

  /**
   * `release` gives back what admission took (recogniser slot, per-key count); it runs on the socket's
   * close, before the close is recorded in `info` and 'session-closed' is emitted.
   */
  constructor(
    readonly ws: WebSocket,
    readonly info: LiveSessionInfo,
    private readonly ctx: LiveSessionContext,
    release: () => void,
  ) {
    ws.on('error', () => {});
    ws.once('close', (code: number, reason: Buffer) => {
      this.finish();
      release();
      info.closedAt = performance.now();
      info.closeCode = code;
      info.closeReason = reason.toString();
      for (const fn of this.closers) fn();
      ctx.events.emit('session-closed', info);
    });
    ctx.events.emit('session-open', info);
  }

  /** Frames in: binary ones are logged here, text ones by the provider (it knows their type). */
  listen(onBinary: (buf: Buffer) => void, onText: (raw: string) => void, onAny?: () => void): void {
    this.ws.on('message', (data: RawData, isBinary: boolean) => {
      if (this.ended) return;
      const buf = toBuffer(data);
      onAny?.();
      if (!isBinary) return onText(buf.toString('utf8'));
      this.record('in', 'binary', buf.length);
      onBinary(buf);
    });
  }

  record(direction: 'in' | 'out', kind: 'binary' | 'text', size: number, type?: string): void {
    this.ctx.frames.record({ session: this.info.id, direction, kind, size, ...(type !== undefined ? { type } : {}) });
  }

  /** A JSON text frame out (logged with `type`); nothing once the session ended or the socket closed. */
  send(msg: object, type: string): boolean {
    if (this.ended || this.ws.readyState !== this.ws.OPEN) return false;
    const text = JSON.stringify(msg);
    this.record('out', 'text', text.length, type);
    this.ws.send(text);
    return true;
  }

  /** Run `fn` after `ms` unless the session ended first. */
  after(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.ended) fn();
    }, ms);
    this.timers.add(t);
  }

  /** A timer restarted by each call of the returned function (e.g. an inactivity timeout); dies with the session. */
  restartable(ms: number, fn: () => void): () => void {
    let t: NodeJS.Timeout | undefined;
    return () => {
      if (t) {
        clearTimeout(t);
        this.timers.delete(t);
      }
      if (this.ended) return;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        if (!this.ended) fn();
      }, ms);
      t = timer;
      this.timers.add(timer);
    };
  }

  /** Run at the end of the session, whoever ended it (stop the recogniser, …). */
  onFinish(fn: () => void): void {
    if (this.ended) fn();
    else this.finishers.push(fn);
  }

  /** Run when the socket has closed, before 'session-closed' is emitted (final bookkeeping). */
  onClosed(fn: () => void): void {
    this.closers.push(fn);
  }

  /** The session is over for the emulator: timers stop, finishers run (once). */
  finish(): void {
    if (this.ended) return;
    this.ended = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const fn of this.finishers.splice(0)) fn();
  }

  /** End with a close frame (the reason cut to the 123 bytes a close frame holds). */
  close(code: number, reason?: string): void {
    if (this.ended) return;
    this.endedByServer = true;
    this.finish();
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(code, reason === undefined ? undefined : closeReason(reason));
  }

  /** End by destroying the socket: no close frame, the client sees 1006. */
  drop(): void {
    if (this.ended) return;
    this.endedByServer = true;
    this.finish();
    this.ws.terminate();
  }
}
