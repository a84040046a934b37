// Cap utilisation with a backlog: 3 worker processes, Deepgram emulator with a fixed service time.
// Measures, at the emulator, the time-weighted average number of requests in flight while the
// backlog lasts, as a ratio of the cap, and the overshoot (max in flight − cap).
'use strict';
const { join } = require('node:path');
const { execFileSync } = require('node:child_process');
const { mkdtempSync, readFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { Redis } = require('ioredis');
const { ROOT, stack, startWorker } = require('./lib');

async function capUtilisation({ cap = 20, jobs = 600, serviceMs = 500, workers = 3, extraEnv = {} } = {}) {
  const { loadConfig } = require(join(ROOT, 'packages/core/dist/index.js'));
  const { FleetQueues } = require(join(ROOT, 'packages/core/dist/adapters/bullmq/fleet-queues.js'));
  const { S3Storage } = require(join(ROOT, 'packages/core/dist/adapters/s3/s3-storage.js'));
  const { enqueuePrefix } = require(join(ROOT, 'apps/producer/dist/index.js'));
  const { startDeepgramEmulator } = require(join(ROOT, 'packages/emulators/dist/index.js'));

  const s = await stack();
  const KEY = 'bench-key';
  const emu = await startDeepgramEmulator({ keys: { [KEY]: 'p1' }, caps: { prerecorded: cap }, serviceTimeMs: { prerecorded: serviceMs } });
  const env = { ...s.serviceEnv, QUEUE_NAME: 'bench', DEEPGRAM_API_KEY: KEY, DEEPGRAM_URL: emu.url, SCRIBE_CAPS: `deepgram:*:nova:batch=${cap}`, BUCKET_DISCOVERY_MS: '200', METRICS_PORT: '0', ...extraEnv };
  const config = loadConfig(env);
  const storage = new S3Storage({ endpoint: s.s3.endpoint, region: s.s3.region, accessKeyId: s.s3.accessKeyId, secretAccessKey: s.s3.secretAccessKey, forcePathStyle: true });
  const dir = mkdtempSync(join(tmpdir(), 'scribe-bench-clip-'));
  execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=16000', '-t', '0.5', join(dir, 'clip.wav')]);
  const clip = readFileSync(join(dir, 'clip.wav'));
  await storage.ensureBucket('bench');
  for (let i = 0; i < jobs; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, jobs - i) }, (_, j) => storage.put('bench', `in/${String(i + j).padStart(5, '0')}.wav`, clip)));
  }
  const procs = [];
  for (let i = 0; i < workers; i++) procs.push(await startWorker(env));

  // Integrate the emulator's in-flight count over time.
  const key = 'p1/prerecorded';
  let last = null;
  let area = 0;
  let max = 0;
  let admitted = 0;
  let windowStart = null;
  let windowEnd = null;
  let windowArea = 0;
  const leaves = [];
  const gaps = [];
  emu.concurrency.onChange((k, n, at) => {
    if (k !== key) return;
    // Hand-off gap: a slot freed (leave) until the next request arrives (enter), while the backlog lasts.
    if (last && n < last.n) leaves.push(at);
    else if (last && n > last.n && leaves.length && windowStart !== null && windowEnd === null) gaps.push(at - leaves.shift());
    if (last) {
      const dt = at - last.at;
      area += last.n * dt;
      if (windowStart !== null && windowEnd === null) windowArea += last.n * dt;
    }
    if (n > (last ? last.n : 0)) admitted += 1;
    max = Math.max(max, n);
    // The window: from the first moment the cap is full until the last `cap` requests are admitted
    // (after that the backlog is gone and the fleet drains by design).
    if (windowStart === null && n === cap) windowStart = at;
    if (windowStart !== null && windowEnd === null && admitted >= jobs) windowEnd = at;
    last = { n, at };
  });

  const redis = new Redis(env.REDIS_URL);
  const fleet = new FleetQueues(config, redis);
  const t0 = performance.now();
  const res = await enqueuePrefix({ source: 's3://bench/in/', out: 's3://bench/out/', provider: 'deepgram', model: 'nova-3' }, { storage, fleet });
  await Promise.all(res.jobIds.map((id) => fleet.waitForJob(id, 600_000)));
  const wall = (performance.now() - t0) / 1000;
  const failed = (await Promise.all((await fleet.allQueues()).map((q) => q.getFailedCount()))).reduce((a, b) => a + b, 0);

  for (const p of procs) p.kill('SIGKILL');
  await fleet.close();
  redis.disconnect();
  await emu.close();
  await s.stop();
  const utilisation = windowArea / ((windowEnd - windowStart) * cap);
  gaps.sort((a, b) => a - b);
  const q = (p) => (gaps.length ? gaps[Math.min(gaps.length - 1, Math.floor(p * gaps.length))] : 0);
  return {
    cap, jobs, serviceMs, workers, wallSeconds: wall,
    windowSeconds: (windowEnd - windowStart) / 1000,
    averageInFlight: windowArea / (windowEnd - windowStart),
    utilisation, maxInFlight: max, overshoot: Math.max(0, max - cap),
    refused: emu.concurrency.refusals(key), failed,
    idealSeconds: (jobs * serviceMs) / cap / 1000,
    handoffP50Ms: q(0.5), handoffP99Ms: q(0.99),
  };
}

const pct = (x) => `${(x * 100).toFixed(2)} %`;
const line = (r) =>
  `- cap ${r.cap}, ${r.jobs} jobs × ${r.serviceMs} ms: average in flight ${r.averageInFlight.toFixed(2)} of ${r.cap} (**${pct(r.utilisation)}**) over ${r.windowSeconds.toFixed(2)} s; ` +
  `max ${r.maxInFlight}, 429s ${r.refused}, failed ${r.failed}; wall ${r.wallSeconds.toFixed(2)} s for an ideal ${r.idealSeconds.toFixed(2)} s; ` +
  `hand-off p50 ${r.handoffP50Ms.toFixed(1)} ms, p99 ${r.handoffP99Ms.toFixed(1)} ms`;

/**
 * The bench scenario: cap 100 (Deepgram's default) and cap 5 (Whisper pay-as-you-go) with the
 * defaults, and cap 100 again with a spare job per slot (informational: what the spares buy).
 */
async function run() {
  const os = require('node:os');
  const load0 = os.loadavg();
  const big = await capUtilisation({ cap: 100, jobs: 600, serviceMs: 2000 });
  const small = await capUtilisation({ cap: 5, jobs: 60, serviceMs: 2000 });
  const spares = await capUtilisation({ cap: 100, jobs: 600, serviceMs: 2000, extraEnv: { CAP_PREFETCH_RATIO: '1', WORKER_CONCURRENCY: '100' } });
  const load1 = os.loadavg();
  const rows = [];
  for (const r of [big, small]) {
    rows.push({ name: `cap utilisation at cap ${r.cap}: in-flight average ÷ cap while the backlog lasts (ideal 100 %)`, value: pct(r.utilisation), target: '≥ 98 %', ok: r.utilisation >= 0.98 });
    rows.push({ name: `cap overshoot at cap ${r.cap} (max in flight − cap, counted by the emulator); 429s; failed jobs`, value: `${r.overshoot}; ${r.refused}; ${r.failed}`, target: '0; 0; 0', ok: r.overshoot === 0 && r.refused === 0 && r.failed === 0 });
  }
  rows.push({ name: 'cap utilisation at cap 100 with a spare job per slot (CAP_PREFETCH_RATIO=1, WORKER_CONCURRENCY=100)', value: pct(spares.utilisation), target: 'informational; overshoot 0', ok: spares.overshoot === 0 && spares.failed === 0 });
  const section = `## Cap utilisation

${big.workers} worker processes (separate OS processes) consume a backlog of Deepgram pre-recorded jobs (\`nova-3\`,
one cap bucket) from a private Redis and S3 server. The Deepgram emulator runs in fixed-service-time mode
(each request held ${big.serviceMs} ms, the cap enforced with 429) and counts requests in flight. The average is
time-weighted from the first moment the cap is full until the last job is admitted; after that the
backlog is gone and the fleet drains. The ideal is 100 % (every slot busy the whole window).

${line(big)}
${line(small)}
${line(spares)} (a spare job per slot: \`CAP_PREFETCH_RATIO=1\`, \`WORKER_CONCURRENCY=100\`)

The hand-off (a request ends at the emulator → the next one arrives there) covers the client reading the
response, releasing the lease (one Lua call + PUBLISH, and this process's own waiters woken at once),
one acquire call for every waiter with room (capAcquire-2.lua), and sending the next request, whose S3
GET was opened while it waited. Every request ends within a few ms of the others here (a fixed service
time, all started together), so each wave of 100 completions lands on 2 cores shared by the 3 workers,
the S3 server, the emulator and Redis: their output PUTs and books compete with the next requests.
Load average before / after: ${load0.map((x) => x.toFixed(2)).join(' ')} / ${load1.map((x) => x.toFixed(2)).join(' ')}.
`;
  return { rows, section, data: { big, small, spares } };
}

module.exports = { capUtilisation, run };
if (require.main === module) require('./lib').printAndExit(run());
