#!/usr/bin/env node
// A large prefix through the fleet with the drip feed (issue 14): Redis memory and the queue's size
// while every object runs, against the obvious alternative measured in the same run, enqueuing the
// whole prefix at once. Private Redis + S3 server (s3rver), the Deepgram emulator answering at once
// (0 ms service time, so the fleet's own cost per job sets the pace), worker processes from the
// compiled code.
//
//  1. `scribe enqueue` with a backlog window above the prefix (BACKLOG_PER_BUCKET = 10 × objects), no
//     workers: used_memory after − before (the whole-prefix enqueue), then the queue is dropped;
//  2. `scribe enqueue` with the default window (cap 100 → 1 000) and two workers running the batch to
//     its end, sampled every 2 s: jobs unfinished in the bucket's queue, used_memory less BullMQ's
//     event stream (capped, it grows to its cap whatever the feed does), jobs done.
// Rows: peak queue ≤ window + one page; drip peak memory ÷ whole-prefix memory; memory growth from
// 25–50 % to 75–100 % done per job (flat: under 100 B).
//
//   node bench/backlog.js                      (BENCH_BACKLOG_OBJECTS=200000 by default)
//   BENCH_BACKLOG_OBJECTS=20000 node bench/backlog.js
'use strict';
const { execFileSync } = require('node:child_process');
const { mkdtempSync, readFileSync } = require('node:fs');
const os = require('node:os');
const { join } = require('node:path');
const { Redis } = require('ioredis');
const { ROOT, stack, startWorker, printAndExit } = require('./lib');
const { createArchive, loadAverage, mib, redisUsedMemory, runNode } = require('./archive');

const KEY = 'bench-key';
const CAP = 100;
const WINDOW = 1000; // the default for cap 100: max(1 000, 4 × (100 + 50))
const PAGE = 1000;
const RETENTION_S = 30;

async function run({ objects = Number(process.env.BENCH_BACKLOG_OBJECTS ?? 200_000) } = {}) {
  const { startDeepgramEmulator } = require(join(ROOT, 'packages/emulators/dist/index.js'));
  const dir = mkdtempSync(join(os.tmpdir(), 'scribe-bench-backlog-'));
  execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=16000', '-t', '0.2', join(dir, 'clip.wav')]);
  const clip = readFileSync(join(dir, 'clip.wav'));
  const s = await stack();
  const archive = await createArchive({ objects, stack: s, body: () => clip });
  const emu = await startDeepgramEmulator({ keys: { [KEY]: 'p1' }, caps: { prerecorded: 100_000 }, serviceTimeMs: { prerecorded: 0 } });
  const redis = new Redis(s.redisUrl);
  const base = {
    ...s.serviceEnv, DEEPGRAM_API_KEY: KEY, DEEPGRAM_URL: emu.url, METRICS_PORT: '0', SCRIBE_CAPS: `deepgram:*:nova:batch=${CAP}`,
    WORKER_CONCURRENCY: '80', BUCKET_DISCOVERY_MS: '200', JOB_RETENTION_SECONDS: String(RETENTION_S),
  };
  const source = `s3://${archive.bucket}/${archive.prefix}`;
  const enqueueArgs = (out) => ['enqueue', source, '--out', `s3://${archive.bucket}/${out}`, '--provider', 'deepgram', '--model', 'nova-3', '--format', 'json', '--json'];
  const workers = [];
  try {
    // 1. The whole prefix at once (no workers): what Redis must hold before the first job runs.
    const allEnv = { ...base, QUEUE_NAME: 'bench-all', BACKLOG_PER_BUCKET: String(10 * objects) };
    const m0 = await redisUsedMemory(redis);
    const all = await runNode(join(ROOT, 'apps/producer/dist/cli.js'), enqueueArgs('out-all/'), allEnv);
    if (all.code !== 0) throw new Error(`whole-prefix enqueue exited ${all.code}: ${all.stdout}`);
    const allSummary = JSON.parse(all.stdout.trim().split('\n').pop());
    const wholeBytes = (await redisUsedMemory(redis)) - m0;
    console.log(`[bench] whole prefix: ${allSummary.added} jobs queued, Redis +${mib(wholeBytes).toFixed(1)} MiB (${all.seconds.toFixed(1)} s)`);
    await redis.flushall();
    await new Promise((r) => setTimeout(r, 1000));

    // 2. The drip feed, run through by two workers.
    const env = { ...base, QUEUE_NAME: 'bench-drip' };
    for (let i = 0; i < 2; i++) workers.push(await startWorker(env));
    const mem0 = await redisUsedMemory(redis);
    const t0 = performance.now();
    const drip = await runNode(join(ROOT, 'apps/producer/dist/cli.js'), enqueueArgs('out-drip/'), env);
    if (drip.code !== 0) throw new Error(`drip enqueue exited ${drip.code}: ${drip.stdout}`);
    const dripSummary = JSON.parse(drip.stdout.trim().split('\n').pop());
    const batchKey = `scribe:bench-drip:batch:${dripSummary.batchId}`;
    const samples = [];
    let finished = false;
    let lastDone = -1;
    let movedAt = Date.now();
    while (!finished) {
      await new Promise((r) => setTimeout(r, 2000));
      const h = await redis.hgetall(batchKey);
      const card = async (st) => (await redis.zcard(`${batchKey}:s:${st}`)) + Number(h[`spilled:${st}`] ?? 0);
      const done = (await card('completed')) + (await card('failed'));
      const waits = await Promise.all(['wait', 'active', 'prioritized', 'delayed'].map(async (k) => {
        const keys = await redis.keys(`scribe:bench-drip.*:${k}`);
        let n = 0;
        for (const key of keys) n += k === 'wait' || k === 'active' ? await redis.llen(key) : await redis.zcard(key);
        return n;
      }));
      const eventKeys = await redis.keys('scribe:bench-drip.*:events');
      let events = 0;
      for (const k of eventKeys) events += Number((await redis.memory('USAGE', k)) ?? 0);
      const used = await redisUsedMemory(redis);
      samples.push({ t: (performance.now() - t0) / 1000, done, pending: waits.reduce((a, b) => a + b, 0), memory: used - events - mem0 });
      finished = Boolean(h.finishedAt);
      if (done !== lastDone) {
        lastDone = done;
        movedAt = Date.now();
      } else if (Date.now() - movedAt > 120_000) throw new Error(`no job finished for 120 s (${done} of ${objects} done)`);
      if (samples.length % 30 === 0) console.log(`[bench] ${done} / ${objects} done, queue ${samples[samples.length - 1].pending}, Redis +${mib(samples[samples.length - 1].memory).toFixed(1)} MiB`);
    }
    const seconds = (performance.now() - t0) / 1000;
    const rec = await redis.hgetall(batchKey);
    const completed = (await redis.zcard(`${batchKey}:s:completed`)) + Number(rec['spilled:completed'] ?? 0);
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const between = (lo, hi) => samples.filter((x) => x.done >= lo * objects && x.done < hi * objects).map((x) => x.memory);
    const mid = median(between(0.25, 0.5));
    const late = median(between(0.75, 1));
    const perJob = (late - mid) / (0.5 * objects);
    const peakMemory = Math.max(...samples.map((x) => x.memory));
    const peakPending = Math.max(...samples.map((x) => x.pending));
    const data = {
      objects, window: WINDOW, cap: CAP, retentionSeconds: RETENTION_S, seconds, jobsPerSecond: objects / seconds, completed, total: Number(rec.total),
      wholeBytes, wholeAdded: allSummary.added, peakMemory, peakPending, mid, late, perJob, ratio: peakMemory / wholeBytes, samples: samples.length, loadavg: loadAverage(),
    };
    const rows = [
      { name: `drip feed, ${objects}-object prefix: most jobs unfinished in the bucket's queue`, value: `${peakPending}`, target: `≤ ${WINDOW + PAGE} (window + a page)`, ok: peakPending <= WINDOW + PAGE && completed === objects },
      { name: `drip feed: peak Redis memory ÷ the whole prefix enqueued at once`, value: `${data.ratio.toFixed(3)} × (${mib(peakMemory).toFixed(1)} MiB vs ${mib(wholeBytes).toFixed(1)} MiB)`, target: '≤ 0.1 ×', ok: data.ratio <= 0.1 },
      { name: 'drip feed: Redis memory growth per job from 25–50 % to 75–100 % done', value: `${perJob.toFixed(1)} B`, target: '≤ 100 B (flat)', ok: perJob <= 100 },
    ];
    const section = `## Bounded backlog (drip feed)

A ${objects}-object prefix (0.2 s WAVs) through two worker processes, Deepgram emulator answering at once, cap ${CAP}
(default window ${WINDOW}), finished jobs kept ${RETENTION_S} s, JSON output only. Side by side in one run on the same
private Redis: \`scribe enqueue\` of the whole prefix at once (window above it, no workers) queued ${allSummary.added} jobs in
**${mib(wholeBytes).toFixed(1)} MiB**; the drip-fed batch then ran to its end in ${seconds.toFixed(0)} s (${data.jobsPerSecond.toFixed(0)} jobs/s, ${completed} completed of
${rec.total}) with at most **${peakPending}** jobs unfinished in the queue and a peak of **${mib(peakMemory).toFixed(1)} MiB** (used_memory less
BullMQ's capped event stream, above the empty fleet), ratio **${data.ratio.toFixed(3)} ×**. Median memory ${mib(mid).toFixed(2)} MiB at 25–50 %
done and ${mib(late).toFixed(2)} MiB at 75–100 %: **${perJob.toFixed(1)} B per job** in between (flat). ${samples.length} samples, every 2 s.

Load average (1/5/15 min) at the end: ${data.loadavg}.
`;
    return { rows, section, data };
  } finally {
    for (const w of workers) w.kill('SIGKILL');
    redis.disconnect();
    await emu.close();
    await archive.stop();
    await s.stop();
  }
}

module.exports = { run };
if (require.main === module) printAndExit(run());
