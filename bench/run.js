#!/usr/bin/env node
// `npm run bench`: runs the benchmarks and writes BENCHMARKS.md. Targets are ratios measured in one
// run (never absolute timings in a unit test); the process exits 1 if a target is missed.
'use strict';
const { writeFileSync } = require('node:fs');
const { join } = require('node:path');
const os = require('node:os');
const { capUtilisation } = require('./caps');
const { pacing } = require('./pacing');
const { manifestBench, manifestRows, manifestSection } = require('./manifest');
const { ROOT } = require('./lib');

async function main() {
  const started = new Date().toISOString();
  const rows = [];
  const check = (name, value, target, ok, unit = '') => rows.push({ name, value, target, ok, unit });

  console.log('[bench] cap utilisation (3 worker processes, backlog, fixed service time 2 s)…');
  const cap = await capUtilisation({ cap: 20, jobs: 400, serviceMs: 2000 });
  console.log(cap);
  console.log('[bench] the same with 500 ms requests (informational: shows the per-hand-off cost)…');
  const short = await capUtilisation({ cap: 20, jobs: 600, serviceMs: 500 });
  console.log(short);
  check('cap utilisation: in-flight average / cap while the backlog lasts', `${(cap.utilisation * 100).toFixed(2)} %`, '≥ 98 %', cap.utilisation >= 0.98);
  check('cap overshoot: max in flight − cap (counted by the emulator)', String(cap.overshoot), '0', cap.overshoot === 0);
  check('cap overshoot with 500 ms requests', String(short.overshoot), '0', short.overshoot === 0);
  check('429s from the emulator', String(cap.refused), '0', cap.refused === 0);
  check('failed jobs', String(cap.failed), '0', cap.failed === 0);

  console.log('[bench] real-clock pacing (concurrent paced streams on one event loop)…');
  const pace = await pacing({});
  console.log(pace);
  check('pacing: early sends (faster than real time)', String(pace.earlySends), '0', pace.earlySends === 0);
  check('pacing: wall time / audio time', pace.realTimeFactor.toFixed(4), '≤ 1.01', pace.realTimeFactor <= 1.01);
  check('pacing: max drift at end of stream', `${pace.driftAtEndMaxMs.toFixed(2)} ms`, '≤ 100 ms (one chunk)', pace.driftAtEndMaxMs <= 100);

  console.log('[bench] a batch from a 100 000-line manifest (creates 100 000 objects first: ~2 min)…');
  const manifest = await manifestBench();
  console.log(manifest);
  rows.push(...manifestRows(manifest));

  const md = `# Benchmarks

Produced by \`npm run bench\` (\`bench/run.js\`) on ${started}: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}.
Targets are ratios measured within this one run; \`npm run bench\` exits 1 when one is missed.

| measure | result | target | met |
|---|---|---|---|
${rows.map((r) => `| ${r.name} | ${r.value} | ${r.target} | ${r.ok ? 'yes' : '**no**'} |`).join('\n')}

## Cap utilisation

${cap.workers} worker processes (separate OS processes) consume a backlog of ${cap.jobs} Deepgram pre-recorded jobs
(\`nova-3\`, one cap bucket, cap ${cap.cap}) from a private Redis and S3 server. The Deepgram emulator runs in
fixed-service-time mode (${cap.serviceMs} ms per request, cap ${cap.cap} enforced with 429) and counts requests in flight.
The average is time-weighted over the window from the first moment the cap is full until the last job is
admitted (${cap.windowSeconds.toFixed(2)} s); after that the backlog is gone and the fleet drains.

- average in flight: ${cap.averageInFlight.toFixed(2)} of ${cap.cap} (${(cap.utilisation * 100).toFixed(2)} %)
- max in flight: ${cap.maxInFlight}; 429s: ${cap.refused}; failed jobs: ${cap.failed}
- wall time ${cap.wallSeconds.toFixed(2)} s for an ideal ${cap.idealSeconds.toFixed(2)} s (jobs × service time / cap)
- slot hand-off (a request ends at the emulator → the next one arrives there): p50 ${cap.handoffP50Ms.toFixed(1)} ms, p99 ${cap.handoffP99Ms.toFixed(1)} ms

The hand-off covers the client reading the response, releasing the lease (one Lua call + PUBLISH), the
waiting process being woken, acquiring (one Lua call) and sending the next request, whose S3 GET was
opened while it waited. On this 2-core machine the three workers, the emulator, the S3 server and Redis
share the CPU. Since the hand-off is a fixed cost, utilisation depends on the service time; the same
run with ${short.serviceMs} ms requests (informational, no target) gave ${(short.utilisation * 100).toFixed(2)} % (average ${short.averageInFlight.toFixed(2)} of ${short.cap}, max ${short.maxInFlight},
429s ${short.refused}, hand-off p50 ${short.handoffP50Ms.toFixed(1)} ms / p99 ${short.handoffP99Ms.toFixed(1)} ms). Real pre-recorded requests take seconds.

## Real-clock pacing

${pace.streams} streams of ${pace.audioSeconds} s each, 100 ms chunks (3 200 bytes), sent concurrently on one event loop with
\`pacedSend\` and the system clock into a null sink (${pace.chunks} chunks).

- lateness per chunk: p50 ${pace.latenessP50Ms.toFixed(2)} ms, p99 ${pace.latenessP99Ms.toFixed(2)} ms, max ${pace.latenessMaxMs.toFixed(2)} ms
- drift at end of stream (lateness of the last chunk), worst stream: ${pace.driftAtEndMaxMs.toFixed(2)} ms
- wall time / audio time: ${pace.realTimeFactor.toFixed(4)}; early sends: ${pace.earlySends}

${manifestSection(manifest)}`;
  writeFileSync(join(ROOT, 'BENCHMARKS.md'), md);
  console.log(md);
  const missed = rows.filter((r) => !r.ok);
  if (missed.length) {
    console.error(`[bench] ${missed.length} target(s) missed`);
    process.exit(1);
  }
  process.exit(0);
}

main().catch((e) => {
  console.error('[bench] failed:', e);
  process.exit(1);
});
