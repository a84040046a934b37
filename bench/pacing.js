// Real-clock pacing at fleet scale: `streams` paced streams of 100 ms chunks in one process, started
// together, each scenario in a fresh child process (bench/pacing-child.js), into a null sink and into real
// WebSockets (the production WsSession) to a server in another process (bench/pacing-sink.js), which
// timestamps every arrival. Beside the providers' pacer (pacedSend on the system clock), the same run
// measures the two obvious alternatives: the naive sleep(chunk)-then-send pacer (bench/pacer-naive.js)
// and the starter-kit style 250 ms pacer (bench/pacer-250ms.js).
//
// `node bench/pacing.js [streams] [seconds]` prints the rows and the section; exits 1 if a row is missed.
'use strict';
const { fork, execFile } = require('node:child_process');
const { join } = require('node:path');
const os = require('node:os');

const PACERS = ['scheduler', 'naive', '250ms'];
const ELD_RESOLUTION_MS = 1;

function child(cfg) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [join(__dirname, 'pacing-child.js'), JSON.stringify(cfg)], { maxBuffer: 1 << 20, timeout: (cfg.seconds + 120) * 1000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`pacing-child ${cfg.pacer}/${cfg.sink} failed: ${err.message}\n${stderr}`));
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop()));
      } catch (e) {
        reject(new Error(`pacing-child ${cfg.pacer}/${cfg.sink}: bad output ${stdout} ${stderr}`));
      }
    });
  });
}

function startSinkServer() {
  const proc = fork(join(__dirname, 'pacing-sink.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = () => new Promise((resolve, reject) => {
    const onExit = (code) => reject(new Error(`pacing-sink exited ${code}`));
    proc.once('exit', onExit);
    proc.once('message', (m) => {
      proc.off('exit', onExit);
      resolve(m);
    });
  });
  return next().then(({ port }) => ({
    url: `ws://127.0.0.1:${port}/`,
    report: () => {
      const p = next();
      proc.send({ cmd: 'report' });
      return p;
    },
    stop: () => new Promise((resolve) => {
      if (proc.exitCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    }),
  }));
}

const ms = (v) => `${v.toFixed(2)} ms`;
const ratio = (alt, ours) => (ours > 0 ? `${(alt / ours).toFixed(0)}×` : '∞');
const eld = (r) => Math.max(0, r.eventLoopDelayP99Ms - ELD_RESOLUTION_MS);

async function run(opts = {}) {
  const streams = opts.streams ?? 500;
  const seconds = opts.seconds ?? 20;
  const log = opts.log ?? ((s) => console.error(s));
  const loadBefore = os.loadavg();
  const started = new Date().toISOString();
  const res = { null: {}, ws: {} };
  for (const pacer of PACERS) {
    log(`[pacing] ${pacer} pacer, ${streams} streams × ${seconds} s into a null sink…`);
    res.null[pacer] = await child({ pacer, sink: 'null', streams, seconds });
  }
  const server = await startSinkServer();
  try {
    for (const pacer of PACERS) {
      log(`[pacing] ${pacer} pacer, ${streams} streams × ${seconds} s into WebSockets to another process…`);
      const r = await child({ pacer, sink: 'ws', streams, seconds, url: server.url });
      r.server = await server.report();
      res.ws[pacer] = r;
    }
  } finally {
    await server.stop();
  }
  const loadAfter = os.loadavg();
  const S = res.null.scheduler;
  const W = res.ws.scheduler;
  const drift = Math.max(S.driftAtEndMaxMs, W.driftAtEndMaxMs);
  const early = S.earlySends + W.earlySends;
  const alt = (sink, key, fmt = ms) => `naive ${fmt(res[sink].naive[key])} (${ratio(res[sink].naive[key], res[sink].scheduler[key])}), 250 ms ${fmt(res[sink]['250ms'][key])} (${ratio(res[sink]['250ms'][key], res[sink].scheduler[key])})`;
  const rows = [
    { name: `pacing: p99 lateness, ${streams} streams into a null sink (vs ${alt('null', 'latenessP99Ms')})`, value: ms(S.latenessP99Ms), target: '≤ 2 ms', ok: S.latenessP99Ms <= 2 },
    { name: `pacing: p99 lateness, ${streams} streams into WebSockets to another process (vs ${alt('ws', 'latenessP99Ms')}); p99 at the server's arrival ${ms(W.server.arrivalP99Ms)}`, value: ms(W.latenessP99Ms), target: '≤ 5 ms', ok: W.latenessP99Ms <= 5 },
    { name: `pacing: end drift, worst stream of both sinks (vs ${alt('ws', 'driftAtEndMaxMs')} into WebSockets)`, value: ms(drift), target: '≤ 5 ms', ok: drift <= 5 },
    { name: `pacing: early sends (vs naive ${res.null.naive.earlySends + res.ws.naive.earlySends}, 250 ms ${res.null['250ms'].earlySends + res.ws['250ms'].earlySends})`, value: String(early), target: '0', ok: early === 0 },
    { name: `pacing: event-loop delay p99 while ${streams} streams run, WebSockets (null sink ${ms(eld(S))}; naive ${ms(eld(res.ws.naive))}, 250 ms ${ms(eld(res.ws['250ms']))})`, value: ms(eld(W)), target: 'reported', ok: true },
  ];
  const line = (sink, p) => {
    const r = res[sink][p];
    const srv = r.server ? ` | ${ms(r.server.arrivalP99Ms)} | ${ms(r.server.transitP99Ms)}` : ' | – | –';
    return `| ${sink === 'null' ? 'null sink' : 'WebSockets'} | ${p} | ${ms(r.latenessP50Ms)} | ${ms(r.latenessP99Ms)} | ${ms(r.latenessMaxMs)} | ${ms(r.driftAtEndMaxMs)} | ${r.earlySends} | ${ms(eld(r))} | ${r.cpuSeconds.toFixed(1)} s${srv} |`;
  };
  const section = `## Real-clock pacing

\`node bench/pacing.js\` on ${started}; load average before ${loadBefore.map((l) => l.toFixed(2)).join(' / ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' / ')} (1 / 5 / 15 min), ${os.cpus().length} cores.

${streams} streams of ${seconds} s of 16 kHz s16le audio each, in 100 ms chunks (3 200 bytes), all started together in one
Node process; each scenario runs in a fresh child process (\`bench/pacing-child.js\`). **scheduler** is the providers'
\`pacedSend\` on the system clock; **naive** sleeps 100 ms then sends, per stream (\`bench/pacer-naive.js\`);
**250 ms** is the starter-kit style, sleep 250 ms then send 250 ms of audio (\`bench/pacer-250ms.js\`). Lateness of a
frame = send time − its deadline (start + bytes before it / byte rate); the alternatives' deadlines are anchored at
their first send, so their first frame is never late. End drift = lateness of a stream's last frame, worst stream.
WebSockets: the production \`WsSession\` (perMessageDeflate off, sends awaited) to a \`ws\` server in another process
(\`bench/pacing-sink.js\`) that reads and discards, timestamping each arrival against the deadline and send time
written into the frame. Event-loop delay: \`monitorEventLoopDelay\` at ${ELD_RESOLUTION_MS} ms resolution, p99 minus the resolution.
Before each measured run the child paces ${S.warmup} unmeasured over the same sink (JIT warm-up, as in a worker
that has been running). The scheduler moves each stream's start forward onto its phase by less than one chunk
(largest offset here ${ms(Math.max(S.phaseOffsetMaxMs, W.phaseOffsetMaxMs))}); its lateness and drift are measured against the moved deadlines,
which are never earlier than the unmoved ones. Wake-ups of the scheduler's one timer (WebSockets run): ${W.timer ? `${W.timer.fired} fired, ${W.timer.timeouts} setTimeout arms, ${W.timer.polls} setImmediate polls after an early timer` : 'n/a'}.

| sink | pacer | p50 | p99 | max | end drift | early | loop delay p99 | CPU | arrival p99 | transit p99 |
|---|---|---|---|---|---|---|---|---|---|---|
${['null', 'ws'].flatMap((sink) => PACERS.map((p) => line(sink, p))).join('\n')}
`;
  return { rows, section, data: { streams, seconds, loadBefore, loadAfter, ...res } };
}

/** The figures bench/run.js reads today (one null-sink scenario with the providers' pacer). */
async function pacing({ streams = 500, seconds = 20 } = {}) {
  const r = await child({ pacer: 'scheduler', sink: 'null', streams, seconds });
  return { ...r, audioSeconds: seconds, chunks: r.frames, realTimeFactor: r.wallSeconds / (seconds - 0.1) };
}

module.exports = { run, pacing };

if (require.main === module) {
  const [streams, seconds] = process.argv.slice(2).map(Number);
  run({ ...(streams ? { streams } : {}), ...(seconds ? { seconds } : {}) })
    .then(({ rows, section }) => {
      for (const r of rows) console.log(`${r.ok ? 'ok  ' : 'MISS'} ${r.name}: ${r.value} (target ${r.target})`);
      console.log(`\n${section}`);
      process.exit(rows.every((r) => r.ok) ? 0 : 1);
    })
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
