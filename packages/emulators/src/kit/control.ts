/** The emulators' own control API, `/_emulator/…` on each emulator's port (no real provider has it). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ConcurrencyTracker } from './concurrency';
import type { FaultPlan } from './faults';
import type { RecogniserPool } from './recogniser-pool';

export const CONTROL_PREFIX = '/_emulator/';

export interface ControlTarget {
  provider: string;
  concurrency: ConcurrencyTracker;
  faultPlan: FaultPlan;
  /** The emulator's recognisers, when it has a pool: reported under `recognisers` in the stats. */
  recognisers?: RecogniserPool;
  /**
   * The emulator's records of what it served (e.g. Deepgram: live sessions and REST requests), for
   * `GET /_emulator/sessions`: a scenario run against the CLI reads them over HTTP as a test in the same
   * process reads the handle. `since` skips the first records (an index into each list).
   */
  records?: () => Record<string, unknown[]>;
}

/** What `GET /_emulator/stats` reports of a RecogniserPool. */
export interface RecogniserStats {
  capacity: number;
  inUse: number;
  /** Work waiting for a recogniser now. */
  queued: number;
  /** Highest number in use at once since the start (or the last reset). */
  maxInUse: number;
  /** Work refused at capacity (`tryAcquire`) since the start (or the last reset). */
  refused: number;
}

export function recogniserStats(pool: RecogniserPool): RecogniserStats {
  return { capacity: pool.capacity, inUse: pool.inUse, queued: pool.queued, maxInUse: pool.maxInUse, refused: pool.refused };
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
 *                              "faults": […], "applied": {…}, "recognisers"?: {capacity, inUse, queued, maxInUse, refused}}
 *   DELETE /_emulator/stats    → 200 as GET, after resetting maxInFlight/sessions/refused (and the
 *                              recognisers' maxInUse/refused)
 *   GET    /_emulator/sessions → 200 {list: [record, …]} (the emulator's own records, where it keeps them;
 *                              `?since=N` leaves out each list's first N)
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
  const pool = target.recognisers;
  const stats = () => ({ provider: target.provider, keys: target.concurrency.snapshot(), ...faults(), ...(pool ? { recognisers: recogniserStats(pool) } : {}) });
  const resetStats = () => {
    target.concurrency.reset();
    if (pool) {
      pool.maxInUse = pool.inUse;
      pool.refused = 0;
    }
  };
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
    if (method === 'DELETE') return (resetStats(), json(200, stats()), true);
    return (notAllowed('GET, DELETE'), true);
  }
  if (path === '/_emulator/sessions' && target.records) {
    req.resume();
    if (method !== 'GET') return (notAllowed('GET'), true);
    const since = Math.max(0, Number(new URL(req.url ?? '/', 'http://emulator').searchParams.get('since')) || 0);
    const lists = target.records();
    return (json(200, Object.fromEntries(Object.entries(lists).map(([k, v]) => [k, v.slice(since)]))), true);
  }
  req.resume();
  json(404, { error: `unknown control path ${path} (the emulator serves ${CONTROL_PREFIX}faults, ${CONTROL_PREFIX}stats${target.records ? ` and ${CONTROL_PREFIX}sessions` : ''})` });
  return true;
}
