// Real-clock pacing: N concurrent paced streams (100 ms chunks) into a null sink on one event loop,
// with the same absolute-deadline sender the providers use. Reports lateness and end-of-stream drift.
'use strict';
const { join } = require('node:path');
const { ROOT } = require('./lib');

async function pacing({ streams = 50, seconds = 30 } = {}) {
  const { pacedSend, LatencyHistogram } = require(join(ROOT, 'packages/core/dist/index.js'));
  const { systemClock } = require(join(ROOT, 'packages/core/dist/adapters/system-clock.js'));
  const all = new LatencyHistogram();
  async function* chunks() {
    for (let i = 0; i < seconds * 10; i++) yield Buffer.alloc(3200);
  }
  const t0 = performance.now();
  const reports = await Promise.all(
    Array.from({ length: streams }, () => pacedSend({ chunks: chunks(), clock: systemClock, send: () => {}, onLateness: (ms) => all.record(ms) })),
  );
  const wall = (performance.now() - t0) / 1000;
  const drift = reports.map((r) => r.driftAtEndMs);
  return {
    streams, audioSeconds: seconds, chunks: all.count, wallSeconds: wall,
    realTimeFactor: wall / (seconds - 0.1),
    latenessP50Ms: all.quantile(0.5), latenessP99Ms: all.quantile(0.99), latenessMaxMs: all.max,
    driftAtEndMaxMs: Math.max(...drift),
    earlySends: reports.reduce((a, r) => a + r.earlySends, 0),
  };
}

module.exports = { pacing };
