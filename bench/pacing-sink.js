// The WebSocket end of the pacing bench, in its own process: accepts connections, reads and discards
// frames, and timestamps each arrival against the deadline and send time the client wrote into its first
// 16 bytes (epoch ms from performance.timeOrigin + now, comparable across processes on one machine).
// Talks to its parent over IPC: sends { port } when listening; on { cmd: 'report' } answers with the
// arrival figures since the last report and resets them.
'use strict';
const { performance } = require('node:perf_hooks');
const { join } = require('node:path');
const { WebSocketServer } = require('ws');

const { LatencyHistogram } = require(join(__dirname, '..', 'packages/core/dist/index.js'));

let arrival = new LatencyHistogram(120_000);
let transit = new LatencyHistogram(120_000);
let frames = 0;
let early = 0;

const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false, maxPayload: 1 << 20 });
wss.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    if (!isBinary || data.length < 16) return;
    const now = performance.timeOrigin + performance.now();
    const late = now - data.readDoubleLE(0);
    if (late < 0) early++;
    arrival.record(late);
    transit.record(now - data.readDoubleLE(8));
    frames++;
  });
});
wss.on('listening', () => process.send({ port: wss.address().port }));
process.on('message', (m) => {
  if (m && m.cmd === 'report') {
    process.send({
      frames,
      arrivalEarly: early,
      arrivalP50Ms: arrival.quantile(0.5),
      arrivalP99Ms: arrival.quantile(0.99),
      arrivalMaxMs: arrival.max,
      transitP50Ms: transit.quantile(0.5),
      transitP99Ms: transit.quantile(0.99),
      transitMaxMs: transit.max,
    });
    arrival = new LatencyHistogram(120_000);
    transit = new LatencyHistogram(120_000);
    frames = 0;
    early = 0;
  }
});
process.on('disconnect', () => process.exit(0));
