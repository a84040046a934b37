/**
 * Shared machinery of the provider emulators: per-key concurrency accounting (the number tests and
 * benchmarks read to prove caps hold), a frame log for pacing assertions, fault hooks, the fault
 * specs of the CLI (`--fault`) with their run-time control endpoint (`/_emulator/…`), and an
 * incremental recogniser session over the local pocketsphinx engine.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { SphinxSession, type SphinxMessage } from '@scribe-fleet/core/adapters/sphinx-recogniser';

/** Concurrent sessions per key, with the high-water mark. `enter` refuses above the cap. */
export class ConcurrencyTracker {
  private readonly current = new Map<string, number>();
  private readonly max = new Map<string, number>();
  private readonly refused = new Map<string, number>();
  private readonly admitted = new Map<string, number>();
  private readonly listeners = new Set<(key: string, inFlight: number, at: number) => void>();
  constructor(public capFor: (key: string) => number) {}

  /** Be told of every change of a key's in-flight count (benchmarks integrate it over time). */
  onChange(fn: (key: string, inFlight: number, at: number) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  private emit(key: string, n: number): void {
    if (this.listeners.size === 0) return;
    const at = performance.now();
    for (const fn of this.listeners) fn(key, n, at);
  }

  enter(key: string): boolean {
    const n = this.current.get(key) ?? 0;
    if (n >= this.capFor(key)) {
      this.refused.set(key, (this.refused.get(key) ?? 0) + 1);
      return false;
    }
    this.current.set(key, n + 1);
    this.max.set(key, Math.max(this.max.get(key) ?? 0, n + 1));
    this.admitted.set(key, (this.admitted.get(key) ?? 0) + 1);
    this.emit(key, n + 1);
    return true;
  }
  leave(key: string): void {
    const n = Math.max(0, (this.current.get(key) ?? 0) - 1);
    this.current.set(key, n);
    this.emit(key, n);
  }
  inFlight(key: string): number {
    return this.current.get(key) ?? 0;
  }
  maxConcurrent(key: string): number {
    return this.max.get(key) ?? 0;
  }
  refusals(key: string): number {
    return this.refused.get(key) ?? 0;
  }
  /** Count a refusal that did not come from the cap (e.g. a `429-storm` fault). */
  noteRefusal(key: string): void {
    this.refused.set(key, (this.refused.get(key) ?? 0) + 1);
  }
  /** Sessions/requests admitted (`enter` returned true) since the start or the last `reset`. */
  sessions(key: string): number {
    return this.admitted.get(key) ?? 0;
  }
  /** Every key seen, with its numbers (what `GET /_emulator/stats` reports). Caps: `null` = none. */
  snapshot(): Record<string, KeyStats> {
    const keys = new Set([...this.current.keys(), ...this.max.keys(), ...this.refused.keys(), ...this.admitted.keys()]);
    const out: Record<string, KeyStats> = {};
    for (const key of [...keys].sort()) {
      const cap = this.capFor(key);
      out[key] = {
        inFlight: this.inFlight(key),
        maxInFlight: this.maxConcurrent(key),
        sessions: this.sessions(key),
        refused: this.refusals(key),
        cap: Number.isFinite(cap) ? cap : null,
      };
    }
    return out;
  }
  reset(): void {
    this.max.clear();
    this.refused.clear();
    this.admitted.clear();
    for (const [k, v] of this.current) this.max.set(k, v);
  }
}

export interface KeyStats {
  inFlight: number;
  maxInFlight: number;
  /** Admitted since the start (or the last reset). */
  sessions: number;
  /** Refused by the cap or by a rate-limit fault. */
  refused: number;
  cap: number | null;
}

export interface FrameRecord {
  session: string;
  direction: 'in' | 'out';
  kind: 'binary' | 'text' | 'http';
  size: number;
  /** Milliseconds on the emulator's monotonic clock. */
  at: number;
  /** For text frames: the message type, when it has one. */
  type?: string;
}

/** Every frame received or sent, for pacing and protocol assertions. Bounded to the last `limit`. */
export class FrameLog {
  private readonly records: FrameRecord[] = [];
  constructor(private readonly limit = 200_000) {}
  record(r: Omit<FrameRecord, 'at'> & { at?: number }): void {
    this.records.push({ ...r, at: r.at ?? performance.now() });
    if (this.records.length > this.limit) this.records.splice(0, this.records.length - this.limit);
  }
  frames(session?: string): FrameRecord[] {
    return session ? this.records.filter((r) => r.session === session) : [...this.records];
  }
  clear(): void {
    this.records.length = 0;
  }
}

/** Faults a test can switch on at run time. Each applies to the next matching request/session. */
export interface FaultHooks {
  /** Answer the next N requests / handshakes with HTTP 503, then behave. */
  fail5xxTimes?: number;
  /** Delay the first response byte (REST) or the handshake (WS) by this many ms. */
  slowFirstByteMs?: number;
  /** Accept the next request/connection and never answer it. */
  neverAnswer?: boolean;
  /** Drop the socket (no close frame) after this many ms of received audio in the next session. */
  dropAfterAudioMs?: number;
}

/** The base every emulator handle offers. */
export interface EmulatorHandle {
  readonly name: string;
  /** http://127.0.0.1:port (REST) — WebSocket clients use ws://127.0.0.1:port. */
  readonly url: string;
  readonly port: number;
  readonly concurrency: ConcurrencyTracker;
  readonly frames: FrameLog;
  faults: FaultHooks;
  /** The `--fault` specs in force (also switched over HTTP at `/_emulator/faults`). */
  readonly faultPlan: FaultPlan;
  close(): Promise<void>;
}

// ---- fault specs: the CLI's `--fault SPEC` and the control endpoint ----------------------------------

/**
 * The scripted faults (as opposed to the programmatic FaultHooks above), one grammar for every
 * emulator:
 *
 *   429-storm[:N]           refuse with the provider's real rate-limit answer
 *   5xx[=STATUS][:N]        the provider's server-error answer (STATUS 500–599; default per provider)
 *   never-answer[:N]        accept the request/session, then send nothing
 *   drop-after=SECONDS[:N]  accept, then destroy the TCP socket SECONDS after the start (no close frame)
 *   early=STATUS[:N]        REST only: answer STATUS before reading the body, then close the connection
 *
 * `:N` = the next N requests/sessions (default: every one until cleared). Faults are kept in the
 * order given and each request/session is hit by at most one: the first with hits left that applies
 * to its endpoint (so `429-storm:3 drop-after=2:1` refuses three, drops the fourth, then behaves).
 * They hit requests that passed authentication (and parameter validation) — the provider's own
 * answers to bad keys are unchanged.
 */
export const FAULT_KINDS = ['429-storm', '5xx', 'never-answer', 'drop-after', 'early'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
/** Statuses `early=` accepts. */
export const EARLY_STATUSES = [401, 402, 413, 429, 500, 503] as const;
export type FaultEndpoint = 'rest' | 'ws';

export interface FaultSpec {
  /** The spec, normalised (e.g. `5xx=503:2`). */
  spec: string;
  kind: FaultKind;
  /** Requests/sessions it hits; absent = every one until cleared. */
  count?: number;
  /** `5xx=` / `early=`: the HTTP status (for 5xx absent = the provider's default answer). */
  status?: number;
  /** `drop-after=`: seconds after the request/session started. */
  seconds?: number;
}

export class FaultSpecError extends Error {}

const SPEC_RE = /^(429-storm|5xx|never-answer|drop-after|early)(?:=([^:]*))?(?::([^:]*))?$/;

/** Parse one `--fault` spec; throws FaultSpecError with the grammar on a mistake. */
export function parseFaultSpec(text: string): FaultSpec {
  const raw = text.trim();
  const m = SPEC_RE.exec(raw);
  const fail = (why: string): never => {
    throw new FaultSpecError(
      `invalid fault ${JSON.stringify(text)}: ${why} (expected 429-storm[:N], 5xx[=STATUS][:N], never-answer[:N], drop-after=SECONDS[:N] or early=STATUS[:N])`,
    );
  };
  if (!m) return fail('unknown fault');
  const kind = m[1] as FaultKind;
  const value = m[2];
  const spec: FaultSpec = { spec: '', kind };
  if (m[3] !== undefined) {
    if (!/^[1-9]\d*$/.test(m[3])) fail('N must be a positive integer');
    spec.count = Number(m[3]);
  }
  switch (kind) {
    case '429-storm':
    case 'never-answer':
      if (value !== undefined) fail(`${kind} takes no value`);
      break;
    case '5xx':
      if (value !== undefined) {
        const s = Number(value);
        if (!/^\d{3}$/.test(value) || s < 500 || s > 599) fail('STATUS must be 500–599');
        spec.status = s;
      }
      break;
    case 'drop-after': {
      const s = Number(value);
      if (value === undefined || value === '' || !Number.isFinite(s) || s < 0 || s > 86_400) fail('SECONDS must be a number from 0 to 86400');
      spec.seconds = s;
      break;
    }
    case 'early': {
      const s = Number(value);
      if (!(EARLY_STATUSES as readonly number[]).includes(s)) fail(`STATUS must be one of ${EARLY_STATUSES.join(', ')}`);
      spec.status = s;
      break;
    }
  }
  const v = kind === 'drop-after' ? `=${spec.seconds}` : spec.status !== undefined ? `=${spec.status}` : '';
  spec.spec = `${kind}${v}${spec.count !== undefined ? `:${spec.count}` : ''}`;
  return spec;
}

/** A fault in force: its spec and how often it has been applied. */
export interface ActiveFault extends FaultSpec {
  /** Hits left; absent = unlimited. */
  remaining?: number;
  applied: number;
}

/** One application of a fault to a request/session. */
export interface FaultHit {
  readonly fault: ActiveFault;
  readonly kind: FaultKind;
  readonly status?: number;
  readonly seconds?: number;
  /** Give the hit back (the request could not be hit after all, e.g. it was refused by the cap). */
  refund(): void;
}

/** The ordered list of scripted faults of one emulator; `take` is called once per request/session. */
export class FaultPlan {
  private faults: ActiveFault[] = [];
  /** Applications per kind since the start (survives `clear`). */
  readonly applied: Record<FaultKind, number> = { '429-storm': 0, '5xx': 0, 'never-answer': 0, 'drop-after': 0, early: 0 };

  /** `endpoints`: what the emulator serves (`early` needs `rest`). */
  constructor(
    readonly endpoints: readonly FaultEndpoint[],
    specs: ReadonlyArray<string | FaultSpec> = [],
  ) {
    this.set(specs);
  }

  /** Parse and check specs against this emulator without changing anything. */
  validate(specs: ReadonlyArray<string | FaultSpec>): FaultSpec[] {
    return specs.map((s) => {
      const spec = typeof s === 'string' ? parseFaultSpec(s) : s;
      if (spec.kind === 'early' && !this.endpoints.includes('rest')) {
        throw new FaultSpecError(`invalid fault ${JSON.stringify(spec.spec)}: early= applies to REST endpoints only (deepgram pre-recorded, openai)`);
      }
      return spec;
    });
  }
  /** Replace the faults in force. */
  set(specs: ReadonlyArray<string | FaultSpec>): void {
    const parsed = this.validate(specs);
    this.faults = parsed.map((s) => ({ ...s, ...(s.count !== undefined ? { remaining: s.count } : {}), applied: 0 }));
  }
  /** Append faults after those in force. */
  add(specs: ReadonlyArray<string | FaultSpec>): void {
    const parsed = this.validate(specs);
    this.faults.push(...parsed.map((s) => ({ ...s, ...(s.count !== undefined ? { remaining: s.count } : {}), applied: 0 })));
  }
  clear(): void {
    this.faults = [];
  }
  /** The faults in force, spent ones included (remaining 0) until cleared. */
  list(): ActiveFault[] {
    return this.faults.map((f) => ({ ...f }));
  }
  /** Whether any fault still has hits left. */
  get active(): boolean {
    return this.faults.some((f) => f.remaining === undefined || f.remaining > 0);
  }

  /** The fault that hits this request/session, if any (counted as applied). */
  take(endpoint: FaultEndpoint): FaultHit | undefined {
    for (const f of this.faults) {
      if (f.kind === 'early' && endpoint !== 'rest') continue;
      if (f.remaining !== undefined && f.remaining <= 0) continue;
      if (f.remaining !== undefined) f.remaining -= 1;
      f.applied += 1;
      this.applied[f.kind] += 1;
      let refunded = false;
      return {
        fault: f,
        kind: f.kind,
        ...(f.status !== undefined ? { status: f.status } : {}),
        ...(f.seconds !== undefined ? { seconds: f.seconds } : {}),
        refund: () => {
          if (refunded) return;
          refunded = true;
          if (f.remaining !== undefined) f.remaining += 1;
          f.applied -= 1;
          this.applied[f.kind] -= 1;
        },
      };
    }
    return undefined;
  }
}

/** ms left until `seconds` after `startedAt` (performance.now() time), at least 0. */
export function msUntil(startedAt: number, seconds: number): number {
  return Math.max(0, startedAt + seconds * 1000 - performance.now());
}

/** A timer that does not keep the process alive (service-time delays, drops). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * `early=STATUS`: answer a request before reading its body, then close the connection the way
 * servers do it (Go's net/http: the answer with `Connection: close`, FIN, then the socket closed
 * ~500 ms later; any body still arriving then gets a TCP reset, so the client's upload is cut off
 * mid-body). The body is never read: the request and its socket are paused.
 */
export function answerBeforeBody(req: IncomingMessage, status: number, body: string, headers: Record<string, string> = {}, lingerMs = 500): void {
  const socket = req.socket;
  req.pause();
  socket.pause();
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    `Date: ${new Date().toUTCString()}`,
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.on('error', () => undefined);
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
  const timer = setTimeout(() => socket.destroy(), lingerMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

// ---- the control endpoint: /_emulator/… on the emulator's own port ---------------------------------

export const CONTROL_PREFIX = '/_emulator/';

export interface ControlTarget {
  provider: string;
  concurrency: ConcurrencyTracker;
  faultPlan: FaultPlan;
}

/**
 * The emulators' own control paths (they exist only on the emulators, never on a real provider; no
 * auth — the emulators listen on 127.0.0.1):
 *
 *   GET    /_emulator/faults   → 200 {"faults": [{spec, kind, count?, remaining?, applied, …}], "applied": {kind: n}}
 *   POST   /_emulator/faults   {"faults": ["429-storm:20", …], "append"?: true} → 200 as GET (replaces the
 *                              list unless `append`); a bad spec → 400 {"error"} and nothing changes
 *   DELETE /_emulator/faults   → 200 {"faults": []} (every fault off)
 *   GET    /_emulator/stats    → 200 {"provider", "keys": {key: {inFlight, maxInFlight, sessions, refused, cap}},
 *                              "faults": […], "applied": {…}}
 *   DELETE /_emulator/stats    → 200 as GET, after resetting maxInFlight/sessions/refused
 *
 * Returns false (not handled) for any other path.
 */
export function handleControlRequest(req: IncomingMessage, res: ServerResponse, target: ControlTarget): boolean {
  const path = new URL(req.url ?? '/', 'http://emulator').pathname;
  if (!path.startsWith(CONTROL_PREFIX)) return false;
  const json = (status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-store' }).end(text);
  };
  const faults = () => ({ faults: target.faultPlan.list(), applied: { ...target.faultPlan.applied } });
  const stats = () => ({ provider: target.provider, keys: target.concurrency.snapshot(), ...faults() });
  const method = req.method ?? 'GET';
  const notAllowed = (allow: string) => {
    res.setHeader('allow', allow);
    json(405, { error: `${method} is not allowed on ${path} (allowed: ${allow})` });
  };
  if (path === '/_emulator/faults') {
    if (method === 'GET') return (req.resume(), json(200, faults()), true);
    if (method === 'DELETE') return (req.resume(), target.faultPlan.clear(), json(200, faults()), true);
    if (method !== 'POST') return (req.resume(), notAllowed('GET, POST, DELETE'), true);
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size <= 65_536) parts.push(d);
    });
    req.on('end', () => {
      if (size > 65_536) return json(413, { error: 'control request body over 64 KiB' });
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(parts).toString('utf8'));
      } catch (e) {
        return json(400, { error: `invalid JSON: ${(e as Error).message}` });
      }
      const list = (body as { faults?: unknown } | null)?.faults;
      if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) {
        return json(400, { error: 'expected {"faults": ["SPEC", …]} (e.g. {"faults": ["429-storm:20"]})' });
      }
      try {
        if ((body as { append?: unknown }).append === true) target.faultPlan.add(list as string[]);
        else target.faultPlan.set(list as string[]);
      } catch (e) {
        return json(400, { error: (e as Error).message });
      }
      json(200, faults());
    });
    return true;
  }
  if (path === '/_emulator/stats') {
    req.resume();
    if (method === 'GET') return (json(200, stats()), true);
    if (method === 'DELETE') return (target.concurrency.reset(), json(200, stats()), true);
    return (notAllowed('GET, DELETE'), true);
  }
  req.resume();
  json(404, { error: `unknown control path ${path} (the emulator serves ${CONTROL_PREFIX}faults and ${CONTROL_PREFIX}stats)` });
  return true;
}

export type RecogniserEvent = SphinxMessage;

/** An incremental recogniser session; `partialMs` > 0 gives partial hypotheses as audio arrives. */
export function openRecogniser(opts: { partialMs?: number; onMessage?: (m: SphinxMessage) => void } = {}): SphinxSession {
  return new SphinxSession(opts);
}

/** Words as the recogniser reports them: lowercase, no punctuation. `punctuate` capitalises and ends sentences. */
export function punctuate(words: string[]): string[] {
  return words.map((w, i) => {
    let out = i === 0 ? w.charAt(0).toUpperCase() + w.slice(1) : w;
    if (i === words.length - 1) out += '.';
    return out;
  });
}

export function bearerOrToken(header: string | undefined): { scheme: string; credential: string } | null {
  if (!header) return null;
  const m = /^(\S+)\s+(.+)$/.exec(header.trim());
  return m ? { scheme: m[1]!, credential: m[2]! } : { scheme: '', credential: header.trim() };
}
