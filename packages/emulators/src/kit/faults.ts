/**
 * Faults, one grammar for every emulator: the programmatic hooks tests switch on (FaultHooks), the
 * scripted specs of the CLI's `--fault` (FaultPlan, also switched at run time through the control API),
 * and the two ways a fault answers early: before a REST body is read, or at a WebSocket handshake.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { refuseUpgrade } from './server';
import { msUntil } from './util';

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

/**
 * The handshake-level fault hooks (FaultHooks), applied to one upgrade request: 5xx (consumed one at
 * a time), never answer (socket held open until the emulator closes), slow first byte. Returns true
 * when the request was consumed by a fault.
 */
export async function applyHandshakeFaults(faults: FaultHooks, socket: Duplex): Promise<boolean> {
  if (faults.fail5xxTimes && faults.fail5xxTimes > 0) {
    faults.fail5xxTimes -= 1;
    refuseUpgrade(socket, 503, { error: 'Service Unavailable' });
    return true;
  }
  if (faults.neverAnswer) return true;
  if (faults.slowFirstByteMs && faults.slowFirstByteMs > 0) await sleep(faults.slowFirstByteMs);
  return false;
}

/**
 * A REST request hit by `never-answer` or `drop-after`: its body is read and nothing is ever sent; with
 * `drop-after` the TCP socket is destroyed SECONDS after `startedAt` (no answer, no close). Resolves when
 * the response closes, with whether the drop did it (otherwise the client went away).
 */
export function holdRequest(hit: FaultHit, req: IncomingMessage, res: ServerResponse, startedAt: number): Promise<{ dropped: boolean }> {
  req.resume();
  const socket = req.socket;
  let dropped = false;
  const timer =
    hit.kind === 'drop-after'
      ? setTimeout(() => {
          dropped = true;
          socket.destroy();
        }, msUntil(startedAt, hit.seconds ?? 0))
      : undefined;
  return new Promise((resolve) =>
    res.once('close', () => {
      clearTimeout(timer);
      resolve({ dropped });
    }),
  );
}
