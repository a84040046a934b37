// One pacing scenario in a fresh process: `streams` paced streams of `seconds` of audio, started together,
// into a null sink or into real WebSockets (the production WsSession) to `url`. Prints one JSON line.
// Pacers: `scheduler` (the providers' pacedSend on the system clock), `naive` (sleep(chunk) then send),
// `250ms` (sleep 250 ms, send 250 ms). Lateness of a frame = send time - its deadline; the alternatives'
// deadlines are anchored at their first send (so their first frame is never late by definition).
// Before the measured run, `warmupStreams` streams pace `warmupSeconds` unmeasured over the same sink
// (the JIT warm-up of a worker that has been running; default 50 streams × 1 s).
'use strict';
const { monitorEventLoopDelay, performance } = require('node:perf_hooks');
const { setMaxListeners } = require('node:events');
const { join } = require('node:path');
const { naivePacer } = require('./pacer-naive');
const { starterKitPacer } = require('./pacer-250ms');

const ROOT = join(__dirname, '..');
const BYTE_RATE = 32_000;
const CHUNK_MS = 100;

async function main(cfg) {
  const { pacer, sink, streams, seconds, url } = cfg;
  const core = require(join(ROOT, 'packages/core/dist/index.js'));
  const { systemClock, systemTimer } = require(join(ROOT, 'packages/core/dist/adapters/system-clock.js'));
  const { WsSession } = require(join(ROOT, 'packages/core/dist/adapters/providers/shared/ws-socket.js'));
  const chunkBytes = core.chunkBytesFor(CHUNK_MS);

  // Sinks. Frames to a WebSocket carry their deadline and send time (epoch ms, float64) in the first 16 bytes.
  const sockets = [];
  if (sink === 'ws') {
    const ac = new AbortController();
    setMaxListeners(0, ac.signal);
    for (let i = 0; i < streams; i += 50) {
      const batch = [];
      for (let j = i; j < Math.min(streams, i + 50); j++) batch.push(WsSession.open({ provider: 'bench', url, signal: ac.signal, connectTimeoutMs: 30_000 }));
      sockets.push(...(await Promise.all(batch)));
    }
  }
  const origin = performance.timeOrigin;
  const deliver = sink === 'ws'
    ? (id, frame, due) => {
        frame.writeDoubleLE(origin + due, 0);
        frame.writeDoubleLE(origin + performance.now(), 8);
        return sockets[id].send(frame);
      }
    : () => undefined;

  async function session(n, secs, measured) {
    const totalBytes = secs * BYTE_RATE;
    const hist = new core.LatencyHistogram(120_000);
    let early = 0;
    const ends = new Array(n).fill(0);
    const frames = new Array(n).fill(0);
    const phases = new Array(n).fill(0);
    let t0 = 0;
    // Per `timelineMs` of the run: the worst lateness, frames over 2 ms late, frames (diagnostics).
    const timeline = [];
    const record = (late) => {
      hist.record(late);
      if (!cfg.timeline) return;
      const i = Math.floor((performance.now() - t0) / (cfg.timelineMs ?? 1000));
      const slot = (timeline[i] ??= { maxMs: 0, over2: 0, frames: 0 });
      slot.frames++;
      if (late > slot.maxMs) slot.maxMs = late;
      if (late > 2) slot.over2++;
    };
    // The alternatives: measured in the sink wrapper against deadlines anchored at the stream's first send.
    const wrapped = (id) => {
      let anchor;
      let bytes = 0;
      return (frame) => {
        const at = performance.now();
        if (anchor === undefined) anchor = at;
        const due = anchor + (bytes * 1000) / BYTE_RATE;
        const late = at - due;
        if (late < -1e-6) early++;
        record(late);
        ends[id] = late;
        frames[id]++;
        bytes += frame.length;
        return deliver(id, frame, due);
      };
    };
    async function* chunks() {
      for (let off = 0; off < totalBytes; off += chunkBytes) yield Buffer.alloc(Math.min(chunkBytes, totalBytes - off));
    }
    const eld = monitorEventLoopDelay({ resolution: 1 });
    eld.enable();
    const cpu0 = process.cpuUsage();
    t0 = performance.now();
    await Promise.all(
      Array.from({ length: n }, async (_, id) => {
        if (pacer === 'scheduler') {
          let pending = 0;
          const r = await core.pacedSend({
            chunks: chunks(),
            clock: systemClock,
            onLateness: (ms) => {
              pending = ms;
              record(ms);
            },
            send: (chunk) => {
              frames[id]++;
              return deliver(id, chunk, performance.now() - pending);
            },
          });
          ends[id] = r.driftAtEndMs;
          early += r.earlySends;
          phases[id] = r.phaseOffsetMs ?? 0;
          return;
        }
        if (pacer === 'naive') {
          const list = [];
          for await (const c of chunks()) list.push(c);
          return naivePacer({ frames: list, frameMs: CHUNK_MS, onSend: wrapped(id) });
        }
        if (pacer === '250ms') return starterKitPacer({ pcm: Buffer.alloc(totalBytes), byteRate: BYTE_RATE, onSend: wrapped(id) });
        throw new Error(`unknown pacer ${pacer}`);
      }),
    );
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    eld.disable();
    if (!measured) return undefined;
    return {
      pacer, sink, streams: n, seconds: secs,
      frames: frames.reduce((a, b) => a + b, 0),
      latenessP50Ms: hist.quantile(0.5),
      latenessP99Ms: hist.quantile(0.99),
      latenessP999Ms: hist.quantile(0.999),
      latenessMaxMs: hist.max,
      driftAtEndMaxMs: Math.max(...ends),
      earlySends: early,
      phaseOffsetMaxMs: Math.max(...phases),
      wallSeconds: wallMs / 1000,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      eventLoopDelayP50Ms: eld.percentile(50) / 1e6,
      eventLoopDelayP99Ms: eld.percentile(99) / 1e6,
      eventLoopDelayMaxMs: eld.max / 1e6,
      ...(cfg.timeline ? { timeline: timeline.map((t) => t && `${t.maxMs.toFixed(1)}/${t.over2}/${t.frames}`) } : {}),
    };
  }

  const warmStreams = Math.min(streams, cfg.warmupStreams ?? 50);
  const warmSeconds = cfg.warmupSeconds ?? 1;
  if (warmStreams > 0 && warmSeconds > 0) await session(warmStreams, warmSeconds, false);
  const result = await session(streams, seconds, true);
  await Promise.all(sockets.map((s) => s.close(1000, '', 2000)));
  return { ...result, ...(systemTimer ? { timer: systemTimer.stats } : {}), warmup: `${warmStreams} streams × ${warmSeconds} s` };
}

if (require.main === module) {
  main(JSON.parse(process.argv[2]))
    .then((r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      process.exit(0);
    })
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}

module.exports = { main };
