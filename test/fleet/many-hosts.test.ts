/**
 * Many hosts (issue 14): worker processes as separate hosts, each in a Linux network namespace of its
 * own (test/helpers/netns.ts), against ONE Redis, ONE S3 server (behind the chaos harness's
 * PUT-counting proxy) and ONE Deepgram emulator, all listening on the test's bridge address.
 *
 * 1. Caps and job ownership hold across hosts: 3 hosts × 1 worker process, a fleet cap below their
 *    total concurrency; the emulator never sees more than the cap in flight, every job ends once
 *    with one write of each output, the batch ends.
 * 2. A host cut off the network (its link down) for longer than the lease TTL while it holds jobs in
 *    flight: its slots come back within the TTL, its jobs run elsewhere exactly once, and once joined
 *    again it writes no output of a job that moved and completes nothing twice.
 *
 * Without the rights for namespaces the same scenario runs with plain processes, a host cut off by
 * SIGSTOP (SIGCONT to join again); the mode is printed.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CapKeys, capPrefix } from '@scribe-fleet/core/adapters/redis/keys';
import { startDeepgramEmulator, type DeepgramEmulatorHandle, type DeepgramRestRecord } from '@scribe-fleet/emulators';
import { ChaosWorld, type ChaosFigures } from '../chaos/harness';
import { waitForJobs } from '../helpers/fleet';
import { createHosts, type Host, type HostNetwork } from '../helpers/netns';

jest.setTimeout(240_000);

const KEY = 'dg-hosts-key';
const POOL = 'project-1/prerecorded';
const BUCKET = 'deepgram:default:nova:batch';
const CAP = 4;
/**
 * Per worker process: 3 × 2 = 6 > CAP, and equal to the queue's fleet-wide active limit (CAP +
 * prefetch 2), so every host holds jobs (a worker that finishes a job takes the next one itself).
 */
const WORKER_CONCURRENCY = 2;
const LEASE_TTL_MS = 3000;
const WORKER_LOCK_MS = 4000;
/** Below the lease TTL: a session the cut-off host had at the provider ends before its slot is re-let. */
const SERVICE_MS = 1200;
const HOSTS = 3;

let net: HostNetwork;
let emu: DeepgramEmulatorHandle;
let world: ChaosWorld;
let clip: Buffer;
/** Emulator requests admitted (took a slot), with the host that sent each. */
const admitted = new Map<string, { rec: DeepgramRestRecord; host: number; at: number }>();
const figures: Record<string, unknown> = {};

const files = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `${String(i).padStart(4, '0')}.wav`, body: clip }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Requests of `host` admitted and not yet answered. */
const inFlightOf = (host: number) => [...admitted.values()].filter((a) => a.host === host && a.rec.status === undefined).length;

/**
 * Poll `done` every 50 ms until it holds, bounded by progress: fail when `progress()` (the emulator's
 * request count by default) has not changed for `idleMs`.
 */
async function until(what: string, done: () => boolean | Promise<boolean>, idleMs = 30_000, progress: () => unknown = () => emu.requests.length): Promise<void> {
  let seen = JSON.stringify(progress());
  let changedAt = Date.now();
  while (!(await done())) {
    const now = JSON.stringify(progress());
    if (now !== seen) (seen = now), (changedAt = Date.now());
    if (Date.now() - changedAt > idleMs) throw new Error(`no progress for ${idleMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

async function runBatch(prefix: string, n: number) {
  await world.upload(prefix, files(n));
  const startedAt = Date.now();
  const { batchId, jobIds } = await world.enqueue({ source: `s3://${world.bucket}/${prefix}`, out: `s3://${world.bucket}/out/${prefix}`, provider: 'deepgram', model: 'nova-3' });
  expect(jobIds).toHaveLength(n);
  return { batchId, jobIds, startedAt };
}

function expectClean(f: ChaosFigures): void {
  expect(f.problems).toEqual([]);
  expect(f.failedByCode).toEqual({});
  expect(f.lost).toBe(0);
  expect(f.batchesHung).toBe(0);
  expect(f.duplicateOutputWrites).toBe(0);
  expect(f.duplicateWebhooks).toBe(0);
  expect(f.overshoot).toBe(0);
}

/** Every output key of these jobs: its successful writes, the attempts that made them, when the last one was (the proxy's log). */
async function writesOf(jobIds: string[]): Promise<Array<{ job: string; key: string; writes: number; attempts: number; lastAt: number }>> {
  const out = [];
  for (const id of jobIds) {
    const job = (await world.fleet.getJob(id))!;
    for (const key of Object.values((job.returnvalue?.outputs ?? {}) as Record<string, string>)) {
      const writes = world.proxy.writes.filter((w) => w.key === `${world.bucket}/${key}`);
      out.push({ job: id, key, writes: writes.length, attempts: new Set(writes.map((w) => w.attempt)).size, lastAt: Math.max(0, ...writes.map((w) => w.at)) });
    }
  }
  return out;
}

/** The most requests holding an emulator slot at once among `recs` (from admission to their end, or still open). */
function maxOverlap(recs: Array<{ at: number; rec: { endedAt?: number } }>): number {
  const edges = recs.flatMap((r) => [
    [r.at, 1],
    [r.rec.endedAt ?? Infinity, -1],
  ]) as Array<[number, number]>;
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]); // an end before a start at the same instant
  let open = 0;
  let max = 0;
  for (const [, d] of edges) max = Math.max(max, (open += d));
  return max;
}

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'scribe-hosts-'));
  execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=16000', '-t', '0.5', join(dir, 'clip.wav')]);
  clip = readFileSync(join(dir, 'clip.wav'));
  net = createHosts(HOSTS);
  console.log(`[many-hosts] mode: ${net.mode}${net.fallbackReason ? ` (${net.fallbackReason})` : ''}; services on ${net.serviceHost}; hosts ${net.hosts.map((h) => `${h.name}=${h.address}`).join(', ')}`);
  emu = await startDeepgramEmulator({ host: net.serviceHost, keys: { [KEY]: 'project-1' }, serviceTimeMs: { prerecorded: SERVICE_MS } });
  emu.events.on('admitted', (rec: DeepgramRestRecord) => {
    const host = rec.peer ? net.hostOfPeer(rec.peer) : undefined;
    admitted.set(rec.requestId, { rec, host: host?.index ?? -1, at: performance.now() });
  });
  world = await ChaosWorld.start({
    workers: 0,
    host: net.serviceHost,
    env: {
      DEEPGRAM_API_KEY: KEY,
      DEEPGRAM_URL: emu.url,
      SCRIBE_CAPS: `deepgram:*:nova:batch=${CAP}`,
      WORKER_CONCURRENCY: String(WORKER_CONCURRENCY),
      LEASE_TTL_MS: String(LEASE_TTL_MS),
      WORKER_LOCK_MS: String(WORKER_LOCK_MS),
    },
  });
  for (const h of net.hosts) {
    // The worker has no host-identity setting (its lease ids and BullMQ lock tokens are random per
    // process): a host here is its namespace and address.
    const w = await world.addWorker({ prefix: h.prefix });
    h.pids.add(w.pid);
  }
});

afterAll(async () => {
  for (const h of net?.hosts ?? []) if (h.isCut) h.restore();
  await world?.close();
  await emu?.close();
  net?.close();
  console.log(`[many-hosts] figures ${JSON.stringify(figures)}`);
});

test('caps and job ownership hold across hosts: never over the cap, every job completed once, the batch ends', async () => {
  const n = 36;
  const { batchId, jobIds, startedAt } = await runBatch('a/', n);
  const outcomes = await waitForJobs(world.fleet, jobIds, 60_000);
  expect(outcomes.filter((o) => o.state !== 'completed')).toEqual([]);
  const { finishedAt } = await world.waitForBatch(batchId, { idleMs: 60_000 });
  const maxInFlight = emu.concurrency.maxConcurrent(POOL);
  const f = await world.audit(batchId, { cap: CAP, maxInFlight, startedAt, finishedAt });
  const byHost = net.hosts.map((h) => [...admitted.values()].filter((a) => a.host === h.index).length);
  Object.assign(figures, { phase1: { jobs: n, cap: CAP, maxInFlight, attempts: f.attemptsSpent, sessions: emu.requests.length, sessionsByHost: byHost, seconds: f.seconds } });
  console.log(`[many-hosts] phase 1: ${JSON.stringify(figures.phase1)}`);
  expectClean(f);
  expect(f.completed).toBe(n);
  // Saturated, never over: the fleet ran the cap full (4 of 12 possible) and not one more.
  expect(maxInFlight).toBe(CAP);
  expect(emu.concurrency.refusals(POOL)).toBe(0);
  // Each job transcribed once, in one attempt, each output written once.
  expect(f.attemptsSpent).toBe(n);
  expect(emu.requests.filter((r) => r.status === 200)).toHaveLength(n);
  const writes = await writesOf(jobIds);
  expect(writes).toHaveLength(n * 4); // json, txt, srt, vtt
  expect(writes.filter((w) => w.writes !== 1 || w.attempts !== 1).map((w) => w.key)).toEqual([]);
  // Every host took part.
  for (const [i, c] of byHost.entries()) expect([net.hosts[i]!.name, c > 0]).toEqual([net.hosts[i]!.name, true]);
});

test('a host cut off for longer than the lease TTL: its slots come back, its jobs run elsewhere exactly once, and it completes nothing twice when it returns', async () => {
  const victim: Host = net.hosts[0]!;
  const redis = world.redis;
  const leases = new CapKeys(capPrefix(world.config)).leases(BUCKET);
  const maxBefore = emu.concurrency.maxConcurrent(POOL);
  const n = 36;
  const { batchId, jobIds, startedAt } = await runBatch('b/', n);
  // Cut it off while it has a session at the provider (so it holds a slot) and the batch has work left.
  const leaseRows = async () => {
    const rows = await redis.zrange(leases, 0, -1, 'WITHSCORES');
    const m = new Map<string, number>();
    for (let i = 0; i < rows.length; i += 2) m.set(rows[i]!, Number(rows[i + 1]));
    return m;
  };
  let cutScores = new Map<string, number>();
  let heldAtCut = 0;
  while (!victim.isCut) {
    await until(`${victim.name} holding a session`, () => inFlightOf(victim.index) >= 1);
    cutScores = await leaseRows();
    heldAtCut = inFlightOf(victim.index);
    if (heldAtCut >= 1) victim.cut();
  }
  const cutAt = Date.now();
  const cutPerf = performance.now();

  // Its slots come back: every lease held at the cut has been renewed since (a host still up) or has
  // expired. A measurement against the TTL, so bounded by time: 3 TTLs.
  const renewed = new Set<string>();
  let slotsBackMs = -1;
  while (slotsBackMs < 0 && Date.now() - cutAt < LEASE_TTL_MS * 3) {
    const [now, live] = await Promise.all([redis.time(), leaseRows()]);
    const nowMs = Number(now[0]) * 1000 + Math.floor(Number(now[1]) / 1000);
    for (const [id, score] of live) if (cutScores.has(id) && score > cutScores.get(id)!) renewed.add(id);
    if ([...cutScores.keys()].every((id) => renewed.has(id) || (live.get(id) ?? 0) <= nowMs)) slotsBackMs = Date.now() - cutAt;
    else await sleep(50);
  }
  const stalledLeases = [...cutScores.keys()].filter((id) => !renewed.has(id)).length;

  // The batch ends while the host is still cut off: its jobs moved to the others.
  const outcomes = await waitForJobs(world.fleet, jobIds, 60_000);
  expect(outcomes.filter((o) => o.state !== 'completed')).toEqual([]);
  const { finishedAt } = await world.waitForBatch(batchId, { idleMs: 60_000 });
  const jobs = await Promise.all(jobIds.map(async (id) => (await world.fleet.getJob(id))!));
  const moved = jobs.filter((j) => (j.stalledCounter ?? 0) > 0);
  const movedIds = new Set(moved.map((j) => j.id!));
  const restartedAfterMs = moved.map((j) => (j.processedOn ?? 0) - cutAt);
  const completedAfterMs = moved.map((j) => (j.finishedOn ?? 0) - cutAt);

  // Join it again; it gets work again (a second batch), then every host stops gracefully, so whatever
  // the returned host still had under way has ended before the books and writes are checked.
  victim.restore();
  const restoredAt = Date.now();
  const restoredPerf = performance.now();
  const after = await runBatch('c/', 24);
  expect((await waitForJobs(world.fleet, after.jobIds, 60_000)).filter((o) => o.state !== 'completed')).toEqual([]);
  const afterEnd = await world.waitForBatch(after.batchId, { idleMs: 60_000 });
  const victimSessionsAfter = [...admitted.values()].filter((a) => a.host === victim.index && a.rec.startedAt >= restoredPerf).length;
  // What no lease can fence: requests the cut host had at the provider stay open there (its upload
  // or the answer cannot cross the cut) past the TTL, while its slots go to the other hosts. Those
  // are counted apart; everything else the provider saw is what the fleet admitted.
  const stranded = [...admitted.values()].filter((a) => a.host === victim.index && a.rec.startedAt < restoredPerf && (a.rec.endedAt ?? Infinity) > cutPerf + LEASE_TTL_MS).map((a) => a.rec.requestId);
  const admittedMax = () => maxOverlap([...admitted.values()].filter((a) => !stranded.includes(a.rec.requestId)));
  const maxAdmitted = admittedMax();
  const maxInFlight = maxAdmitted;
  const fB = await world.audit(batchId, { cap: CAP, maxInFlight, startedAt, finishedAt });
  const fC = await world.audit(after.batchId, { cap: CAP, maxInFlight, startedAt: after.startedAt, finishedAt: afterEnd.finishedAt });

  const stopped = world.workers.splice(0);
  const exits = await Promise.all(stopped.map((w) => w.stop()));
  const settledAt = Date.now();
  const fB2 = await world.audit(batchId, { cap: CAP, maxInFlight: admittedMax(), startedAt, finishedAt });
  const jobsAfter = await Promise.all(jobIds.map(async (id) => (await world.fleet.getJob(id))!));
  // Writes are attributed to a host by address (netns); with processes all come from 127.0.0.1.
  const victimWrites = net.mode === 'netns' ? world.proxy.writes.filter((w) => w.at > restoredAt && net.hostOfPeer(`${w.from}:0`)?.index === victim.index) : [];
  // The moved jobs were completed elsewhere while the host was away: any write of theirs since it
  // returned would be a second one (by anyone: this holds in both modes).
  const finalWrites = await writesOf([...jobIds, ...after.jobIds]);
  const lateWritesOfMoved = finalWrites.filter((w) => movedIds.has(w.job) && w.lastAt > restoredAt).map((w) => w.key);
  // What the returned host said about the jobs that moved (lock renewals refused, jobs dropped).
  const victimLog = stopped
    .find((w) => victim.pids.has(w.pid))!
    .output()
    .split('\n')
    .filter((l) => /lock|LOCK_LOST/.test(l));

  Object.assign(figures, {
    phase2: {
      mode: net.mode,
      jobs: n,
      cap: CAP,
      maxInFlight: emu.concurrency.maxConcurrent(POOL),
      maxAdmittedByTheFleet: maxAdmitted,
      strandedAtTheProvider: stranded.length,
      leaseTtlMs: LEASE_TTL_MS,
      lockMs: WORKER_LOCK_MS,
      victim: victim.name,
      sessionsHeldAtCut: heldAtCut,
      leasesNotRenewedAfterCut: stalledLeases,
      slotsBackMs,
      movedJobs: moved.length,
      movedRestartedAfterMs: restartedAfterMs,
      movedCompletedAfterMs: completedAfterMs,
      cutForMs: restoredAt - cutAt,
      attemptsSpent: fB.attemptsSpent,
      emulatorRequestsAllPhases: emu.requests.length,
      victimSessionsAfterRestore: victimSessionsAfter,
      victimWritesAfterRestore: net.mode === 'netns' ? victimWrites.length : 'n/a (processes)',
      lateWritesOfMovedJobs: lateWritesOfMoved.length,
      victimDroppedJobs: victimLog.filter((l) => /dropped here/.test(l)).length,
      settleMs: settledAt - restoredAt,
      exitCodes: exits,
    },
  });
  console.log(`[many-hosts] phase 2: ${JSON.stringify(figures.phase2)}`);
  console.log(`[many-hosts] ${victim.name} after it returned:\n${victimLog.join('\n')}`);

  // It held a slot at the cut; its leases expired within the TTL (+ one 50 ms poll, + scheduling).
  expect(heldAtCut).toBeGreaterThanOrEqual(1);
  expect(stalledLeases).toBeGreaterThanOrEqual(1);
  expect(slotsBackMs).toBeGreaterThanOrEqual(0);
  expect(slotsBackMs).toBeLessThan(LEASE_TTL_MS + 500);
  // Its jobs moved: at least those in session at the cut, each completed once elsewhere.
  expect(moved.length).toBeGreaterThanOrEqual(heldAtCut);
  for (const j of moved) expect([j.id, j.stalledCounter, j.attemptsMade]).toEqual([j.id, 1, 1]);
  // Never over the cap, in either phase: the fleet admitted at most CAP at once. The provider's own
  // count can exceed it only by the cut host's requests stranded there, at most the slots it held.
  expect(maxBefore).toBeLessThanOrEqual(CAP);
  expect(maxAdmitted).toBeLessThanOrEqual(CAP);
  expect(stranded.length).toBeLessThanOrEqual(stalledLeases);
  expect(emu.concurrency.maxConcurrent(POOL)).toBeLessThanOrEqual(CAP + stranded.length);
  // The books, the report, one write per output, webhooks: clean, before and after the returned host settled.
  for (const f of [fB, fC, fB2]) expectClean(f);
  expect(fB.completed).toBe(n);
  expect(fC.completed).toBe(24);
  expect(fB2.attemptsSpent).toBe(fB.attemptsSpent);
  // Each job's JSON (written last: the mark of a complete set) by exactly one attempt, the moved
  // jobs' outputs not written again after the host returned. (Other outputs may have a second
  // writer only if a host was cut off between two PUTs of one set: the next attempt writes it again.)
  expect(finalWrites.filter((w) => w.key.endsWith('.json') && w.attempts !== 1).map((w) => w.key)).toEqual([]);
  expect(lateWritesOfMoved).toEqual([]);
  // Nothing ended twice: each job's end is the one seen while the host was away.
  expect(jobsAfter.map((j) => [j.id, j.finishedOn, j.attemptsMade])).toEqual(jobs.map((j) => [j.id, j.finishedOn, j.attemptsMade]));
  // The returned host did not crash; every host stopped cleanly.
  expect(exits).toEqual(stopped.map(() => 0));
});
