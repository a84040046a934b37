/**
 * The server skeleton every streaming emulator (AssemblyAI v3, Fireworks) stands on: the HTTP(S) server
 * with its WebSocket upgrades and `/_emulator/…` control paths, the shared bookkeeping (frame log, per-key
 * concurrency, scripted faults, session records, events, the recogniser pool) and the handle tests get.
 * A provider adds its handshake (`onUpgrade`) and its session; admission (./admission.ts) and the session
 * wrapper (./session.ts) are the same for all.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { ConcurrencyTracker, FaultPlan, FrameLog, handleControlRequest, type EmulatorHandle, type FaultHooks, type FaultSpec } from '../kit';
import type { RecogniserPool } from '../kit';
import { remember, startWsServer, type TlsOptions, type WsEmulatorServer } from '../kit';
import { admit, recogniserPool, type AdmissionAnswers, type Admitted, type RecognisersOption } from './admission';
import { LiveSession, type LiveSessionInfo } from './session';

/** Options every streaming emulator takes. */
export interface LiveEmulatorOptions {
  port?: number;
  host?: string;
  /** Serve wss/https (the official AssemblyAI SDK refuses anything but `wss:`). */
  tls?: TlsOptions;
  /** Concurrent sessions per key (the provider's account cap; each emulator states its default). */
  maxConcurrentPerKey?: number | ((key: string) => number);
  /**
   * Recognisers this emulator runs at once (its hardware, not an account cap): a number, or a pool shared
   * with other emulators. Default `new RecogniserPool()` (cores × STREAMS_PER_CORE). A session takes one
   * when it opens; at capacity it is refused with the provider's own too-many-sessions answer.
   */
  recognisers?: number | RecogniserPool;
  /** Recogniser partial period in ms of audio (each emulator states its default). */
  partialMs?: number;
  /** Continuous speech without a pause is finalised at the next word gap after about this long (default 4000 ms). */
  maxSegmentMs?: number;
  /** Scripted faults (`--fault` grammar, common.ts); switchable at run time via `faultPlan` or `/_emulator/faults`. */
  faultSpecs?: ReadonlyArray<string | FaultSpec>;
  /** Delay before the answer to the end-of-stream message, ms (a slow finalisation). */
  serviceTimeMs?: number;
}

/** The handle every streaming emulator returns. */
export interface LiveEmulatorHandle<F extends FaultHooks, I extends LiveSessionInfo> extends EmulatorHandle {
  faults: F;
  /** ws(s)://127.0.0.1:port — the client's base URL. */
  readonly wsUrl: string;
  /** Emits 'session-open' and 'session-closed' with the session's info. */
  readonly events: EventEmitter;
  /** The recognisers sessions take (`inUse`, `maxInUse`, `refused` are its stats). */
  readonly recognisers: RecogniserPool;
  sessions(): I[];
}

export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, accept: () => Promise<WebSocket>) => void | Promise<void>;

export class LiveServer<F extends FaultHooks, I extends LiveSessionInfo> {
  readonly frames = new FrameLog();
  readonly events = new EventEmitter();
  readonly sessions = new Map<string, I>();
  readonly faultPlan: FaultPlan;
  readonly concurrency: ConcurrencyTracker;
  readonly pool: RecogniserPool;
  /** The programmatic fault hooks in force (replaced whole by the handle's setter). */
  faults = {} as F;
  private srv: WsEmulatorServer | undefined;

  constructor(
    readonly provider: string,
    private readonly opts: LiveEmulatorOptions,
    defaultCap: number,
  ) {
    const cap = opts.maxConcurrentPerKey ?? defaultCap;
    this.concurrency = new ConcurrencyTracker(typeof cap === 'function' ? cap : () => cap);
    this.faultPlan = new FaultPlan(['ws'], opts.faultSpecs ?? []);
    this.pool = recogniserPool(opts.recognisers);
  }

  /** The scripted fault (if any), the recogniser slot and the per-key count for one session of `key`. */
  admit(key: string, answers: AdmissionAnswers, overLimit?: () => boolean): Promise<Admitted | undefined> {
    return admit({ faultPlan: this.faultPlan, concurrency: this.concurrency, pool: this.pool }, key, answers, overLimit);
  }

  /** Complete the upgrade of an admitted session and register it; what it took is given back if the client went away. */
  async accept(accept: () => Promise<WebSocket>, info: I, admitted: Admitted): Promise<LiveSession> {
    let ws: WebSocket;
    try {
      ws = await accept();
    } catch (e) {
      admitted.release();
      throw e;
    }
    return this.open(ws, info, admitted.release);
  }

  /** Register an accepted socket as a session; `release` runs once when it closes. */
  open(ws: WebSocket, info: I, release: () => void = () => {}): LiveSession {
    remember(this.sessions, info);
    return new LiveSession(ws, info, { frames: this.frames, events: this.events }, release);
  }

  async listen(onUpgrade: UpgradeHandler, onRequest?: (req: IncomingMessage, res: ServerResponse) => void): Promise<void> {
    const control = { provider: this.provider, concurrency: this.concurrency, faultPlan: this.faultPlan, recognisers: this.pool };
    this.srv = await startWsServer({
      ...(this.opts.port !== undefined ? { port: this.opts.port } : {}),
      ...(this.opts.host !== undefined ? { host: this.opts.host } : {}),
      ...(this.opts.tls ? { tls: this.opts.tls } : {}),
      onRequest: (req, res) => {
        if (handleControlRequest(req, res, control)) return;
        if (onRequest) return onRequest(req, res);
        req.resume();
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'Not Found' }));
      },
      onUpgrade,
    });
  }

  /** The handle: the shared fields and getters, plus the provider's `extra`. */
  handle<X extends object>(extra: X): LiveEmulatorHandle<F, I> & X {
    const srv = this.srv;
    if (!srv) throw new Error('listen() first');
    const live = this; // the getters below read and replace this server's hooks
    return {
      name: this.provider,
      url: srv.url,
      wsUrl: srv.url.replace(/^http/, 'ws'),
      port: srv.port,
      concurrency: this.concurrency,
      frames: this.frames,
      events: this.events,
      recognisers: this.pool,
      get faults() {
        return live.faults;
      },
      set faults(f: F) {
        live.faults = f;
      },
      faultPlan: this.faultPlan,
      sessions: () => [...this.sessions.values()],
      close: () => srv.close(),
      ...extra,
    };
  }
}
