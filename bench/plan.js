#!/usr/bin/env node
// `scribe plan` of a 100 000-object prefix (issue 15) against the obvious alternative measured in the
// same run: listing the prefix (ListObjectsV2 page by page, every key, in a process of its own, as
// the plan's listing is). The objects are real FLAC files of 1 to 600 s (silence, so the archive stays
// small), a duration per key from a seeded generator, so the true total is known; the plan measures
// a random sample of 200 (ranged GETs of the headers) and states the total with its 95 % interval.
// Rows: plan time ÷ listing time (target ≤ 2 ×); the interval holds the true total.
//
//   node bench/plan.js                       (BENCH_PLAN_OBJECTS=100000 by default)
'use strict';
const { execFileSync } = require('node:child_process');
const { mkdtempSync, readFileSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const { join } = require('node:path');
const { ROOT, stack, printAndExit } = require('./lib');
const { createArchive, loadAverage, runNode } = require('./archive');

/** Durations (s) of the distinct files: a skewed spread, as archives are (many short calls, a few long meetings). */
const DURATIONS = [1, 2, 3, 5, 8, 12, 20, 30, 45, 60, 90, 120, 180, 300, 600];

/** A small deterministic generator (mulberry32). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function run({ objects = Number(process.env.BENCH_PLAN_OBJECTS ?? 100_000) } = {}) {
  const dir = mkdtempSync(join(os.tmpdir(), 'scribe-bench-plan-'));
  const bodies = DURATIONS.map((d) => {
    const f = join(dir, `${d}.flac`);
    execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'anullsrc=r=16000:cl=mono', '-t', String(d), '-c:a', 'flac', f]);
    return readFileSync(f);
  });
  // Mostly short files: index = floor(u² × n), so the long ones are rare.
  const next = rng(20261207);
  const pick = new Map();
  const s = await stack();
  let truth = 0;
  const archive = await createArchive({
    objects,
    stack: s,
    body: (key) => {
      let i = pick.get(key);
      if (i === undefined) {
        i = Math.floor(next() ** 2 * DURATIONS.length);
        pick.set(key, i);
        truth += DURATIONS[i];
      }
      return bodies[i];
    },
  });
  const source = `s3://${archive.bucket}/${archive.prefix}`;
  const env = { ...s.serviceEnv, QUEUE_NAME: 'bench-plan' };
  try {
    // The alternative: list the prefix, every page, in a process of its own.
    const lister = join(dir, 'list.js');
    writeFileSync(
      lister,
      `const { S3Storage } = require(${JSON.stringify(join(ROOT, 'packages/core/dist/adapters/s3/s3-storage.js'))});
const st = new S3Storage({ endpoint: process.env.S3_ENDPOINT, region: process.env.S3_REGION, accessKeyId: process.env.S3_ACCESS_KEY_ID, secretAccessKey: process.env.S3_SECRET_ACCESS_KEY, forcePathStyle: true });
(async () => { let n = 0; for await (const page of st.listPages(${JSON.stringify(archive.bucket)}, ${JSON.stringify(archive.prefix)})) n += page.length; console.log(n); st.destroy(); })();`,
    );
    const runs = [];
    for (let round = 0; round < 2; round++) {
      const list = await runNode(lister, [], env);
      if (list.code !== 0 || Number(list.stdout.trim()) !== objects) throw new Error(`listing exited ${list.code}: ${list.stdout}`);
      const plan = await runNode(join(ROOT, 'apps/producer/dist/cli.js'), ['plan', source, '--out', `s3://${archive.bucket}/out/`, '--provider', 'deepgram', '--compare', 'assemblyai::stream', '--sample', '200', '--seed', String(round + 1), '--json'], env);
      if (plan.code !== 0) throw new Error(`scribe plan exited ${plan.code}: ${plan.stdout}`);
      const p = JSON.parse(plan.stdout.trim().split('\n').pop());
      runs.push({ listSeconds: list.seconds, planSeconds: plan.seconds, plan: p });
      console.log(`[bench] round ${round + 1}: listing ${list.seconds.toFixed(1)} s, plan ${plan.seconds.toFixed(1)} s; audio ${(p.audio.seconds.estimate / 3600).toFixed(1)} h (${(p.audio.seconds.low / 3600).toFixed(1)}–${(p.audio.seconds.high / 3600).toFixed(1)}), truth ${(truth / 3600).toFixed(1)} h`);
    }
    const listSeconds = Math.min(...runs.map((r) => r.listSeconds));
    const planSeconds = Math.min(...runs.map((r) => r.planSeconds));
    const ratio = planSeconds / listSeconds;
    const covered = runs.filter((r) => r.plan.audio.seconds.low <= truth && truth <= r.plan.audio.seconds.high).length;
    const last = runs[runs.length - 1].plan;
    const err = (last.audio.seconds.estimate - truth) / truth;
    const data = { objects, truthSeconds: truth, listSeconds, planSeconds, ratio, covered, rounds: runs.length, runs: runs.map((r) => ({ listSeconds: r.listSeconds, planSeconds: r.planSeconds, audio: r.plan.audio, files: r.plan.files })), loadavg: loadAverage() };
    const rows = [
      { name: `plan of a ${objects}-object prefix (sample 200) ÷ listing it`, value: `${ratio.toFixed(2)} × (${planSeconds.toFixed(1)} s vs ${listSeconds.toFixed(1)} s)`, target: '≤ 2 ×', ok: ratio <= 2 },
      { name: 'plan: the 95 % interval holds the true audio total', value: `${covered} of ${runs.length} runs (last: ${(err * 100).toFixed(1)} % off)`, target: 'every run', ok: covered === runs.length },
    ];
    const section = `## Planning a batch

\`scribe plan\` of a ${objects}-object prefix of FLAC files (1–600 s, durations drawn so most are short; true total
**${(truth / 3600).toFixed(1)} h**) with a random sample of 200, against listing the prefix (every ListObjectsV2 page, in a process
of its own), two rounds side by side on one private S3 server; the best of each: plan **${planSeconds.toFixed(1)} s**, listing
**${listSeconds.toFixed(1)} s**, ratio **${ratio.toFixed(2)} ×**. Estimates: ${runs.map((r) => `${(r.plan.audio.seconds.estimate / 3600).toFixed(1)} h (${(r.plan.audio.seconds.low / 3600).toFixed(1)}–${(r.plan.audio.seconds.high / 3600).toFixed(1)})`).join(', ')};
${runs.map((r) => r.plan.audio.fromHeader).join(' and ')} of the 200 sampled files measured from their headers. Command: \`node bench/plan.js\`.

Load average (1/5/15 min) at the end: ${data.loadavg}.
`;
    return { rows, section, data };
  } finally {
    await archive.stop();
    await s.stop().catch(() => undefined);
  }
}

module.exports = { run };
if (require.main === module) printAndExit(run());
