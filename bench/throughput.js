#!/usr/bin/env node
// Per-job throughput with a provider that answers at once (Deepgram emulator, 0 ms service time):
// one worker process (WORKER_CONCURRENCY=50, a cap far above it) against the obvious alternative,
// bench/plain-pipeline.js: the same S3 GET + provider request + output PUTs at the same concurrency
// with no queue, limiter or books. Four runs over four copies of the objects on the same S3 server, in
// the order plain, worker, worker, plain, so drift during the run weighs on both sides alike. A run's
// rate is taken between its first and last job to finish (start-up excluded). `node bench/throughput.js`
// runs it alone.
'use strict';
const { join } = require('node:path');
const { execFileSync, spawn } = require('node:child_process');
const { mkdtempSync, readFileSync } = require('node:fs');
const os = require('node:os');
const { Redis } = require('ioredis');
const { ROOT, stack, startWorker, printAndExit } = require('./lib');

const CONCURRENCY = 50;

function runPlain(opts) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(__dirname, 'plain-pipeline.js'), JSON.stringify(opts)], {
      env: { PATH: process.env.PATH, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`plain pipeline exited ${code}`))));
  });
}

async function run({ jobs = Number(process.env.BENCH_THROUGHPUT_JOBS ?? 2000) } = {}) {
  const { loadConfig } = require(join(ROOT, 'packages/core/dist/index.js'));
  const { FleetQueues } = require(join(ROOT, 'packages/core/dist/adapters/bullmq/fleet-queues.js'));
  const { S3Storage } = require(join(ROOT, 'packages/core/dist/adapters/s3/s3-storage.js'));
  const { enqueuePrefix } = require(join(ROOT, 'apps/producer/dist/index.js'));
  const { startDeepgramEmulator } = require(join(ROOT, 'packages/emulators/dist/index.js'));

  const s = await stack();
  const KEY = 'bench-key';
  const emu = await startDeepgramEmulator({ keys: { [KEY]: 'p1' }, caps: { prerecorded: 100_000 }, serviceTimeMs: { prerecorded: 0 } });
  const env = {
    ...s.serviceEnv, QUEUE_NAME: 'bench', DEEPGRAM_API_KEY: KEY, DEEPGRAM_URL: emu.url, METRICS_PORT: '0',
    SCRIBE_CAPS: 'deepgram:*:nova:batch=100000', WORKER_CONCURRENCY: String(CONCURRENCY), BUCKET_DISCOVERY_MS: '200',
  };
  const config = loadConfig(env);
  const storage = new S3Storage({ endpoint: s.s3.endpoint, region: s.s3.region, accessKeyId: s.s3.accessKeyId, secretAccessKey: s.s3.secretAccessKey, forcePathStyle: true });
  const dir = mkdtempSync(join(os.tmpdir(), 'scribe-bench-tp-'));
  execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=16000', '-t', '0.5', join(dir, 'clip.wav')]);
  const clip = readFileSync(join(dir, 'clip.wav'));
  await storage.ensureBucket('bench');
  // Four runs over four sets of the same objects, in the order plain, worker, worker, plain (ABBA), so
  // a drift of the machine or of the S3 server's state over the run weighs on both sides alike.
  const per = Math.floor(jobs / 4);
  const keysOf = (set) => Array.from({ length: per }, (_, i) => `${set}/${String(i).padStart(6, '0')}.wav`);
  const sets = ['plain-1', 'worker-1', 'worker-2', 'plain-2'];
  // Unmeasured warm-up runs of both first (JIT, the S3 server's and Redis's first requests), as in a
  // fleet that has been running.
  const warmUps = ['warm-plain', 'warm-worker'];
  for (const set of [...warmUps, ...sets]) {
    const keys = keysOf(set);
    for (let i = 0; i < keys.length; i += 100) await Promise.all(keys.slice(i, i + 100).map((k) => storage.put('bench', k, clip)));
  }

  const load0 = os.loadavg();
  const redis = new Redis(env.REDIS_URL);
  const fleet = new FleetQueues(config, redis);
  const worker = await startWorker(env);
  let failed = 0;
  const runWorker = async (set) => {
    const res = await enqueuePrefix({ source: `s3://bench/${set}/`, out: `s3://bench/out-${set}/`, provider: 'deepgram', model: 'nova-3' }, { storage, fleet });
    await Promise.all(res.jobIds.map((id) => fleet.waitForJob(id, 600_000).catch(() => undefined)));
    const finished = [];
    for (const id of res.jobIds) {
      const job = await fleet.getJob(id);
      if (job?.finishedOn) finished.push(job.finishedOn);
      if (job?.failedReason) failed += 1;
    }
    finished.sort((a, b) => a - b);
    return (finished.length - 1) / ((finished[finished.length - 1] - finished[0]) / 1000);
  };
  const plainOpts = { endpoint: s.s3.endpoint, region: s.s3.region, accessKeyId: s.s3.accessKeyId, secretAccessKey: s.s3.secretAccessKey, bucket: 'bench', providerUrl: emu.url, apiKey: KEY, concurrency: CONCURRENCY };
  const rates = {};
  for (const set of [...warmUps, ...sets]) rates[set] = /plain/.test(set) ? (await runPlain({ ...plainOpts, keys: keysOf(set) })).jobsPerSecond : await runWorker(set);
  const ours = (rates['worker-1'] + rates['worker-2']) / 2;
  const plain = { jobsPerSecond: (rates['plain-1'] + rates['plain-2']) / 2 };
  const load1 = os.loadavg();
  worker.kill('SIGKILL');
  await fleet.close();
  redis.disconnect();
  await emu.close();
  await s.stop();

  const ratio = ours / plain.jobsPerSecond;
  const data = { jobs: per * 4, rates, concurrency: CONCURRENCY, oursJobsPerSecond: ours, plainJobsPerSecond: plain.jobsPerSecond, ratio, failed, loadavg: [load0, load1] };
  const rows = [
    { name: `per-job throughput, 0 ms provider, concurrency ${CONCURRENCY}: worker ÷ plain script`, value: `${ratio.toFixed(2)} × (${ours.toFixed(0)} vs ${plain.jobsPerSecond.toFixed(0)} jobs/s)`, target: '≥ 0.7 ×', ok: ratio >= 0.7 && failed === 0 },
  ];
  const section = `## Per-job throughput

${per * 4} Deepgram pre-recorded jobs of a 0.5 s WAV against the emulator answering at once (0 ms service
time), so what is measured is the fleet's own cost per job. One worker process (\`WORKER_CONCURRENCY=${CONCURRENCY}\`,
cap 100 000) against \`bench/plain-pipeline.js\`, a plain script doing the same S3 GET → provider request
(\`http.request\` pipe) → 4 output PUTs at concurrency ${CONCURRENCY}, with no queue, limiter, books or telemetry.
Same S3 server and emulator; four runs of ${per} jobs over four copies of the objects, in the order plain,
worker, worker, plain (the worker process started once), after an unmeasured warm-up run of each. Each run's rate is taken
between the first and the last job to finish; each side's figure is the mean of its two runs.

- worker: ${ours.toFixed(1)} jobs/s (${rates['worker-1'].toFixed(1)}, ${rates['worker-2'].toFixed(1)}); plain script: ${plain.jobsPerSecond.toFixed(1)} jobs/s (${rates['plain-1'].toFixed(1)}, ${rates['plain-2'].toFixed(1)}); ratio **${ratio.toFixed(2)} ×**; failed jobs: ${failed}
- load average before / after: ${load0.map((x) => x.toFixed(2)).join(' ')} / ${load1.map((x) => x.toFixed(2)).join(' ')}
`;
  return { rows, section, data };
}

module.exports = { run };
if (require.main === module) printAndExit(run());
