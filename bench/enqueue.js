#!/usr/bin/env node
// Enqueue of a 100 000-object prefix, side by side in one run against a private Redis + S3 server
// (s3rver), from the compiled code:
//  - the obvious alternative, bench/raw-enqueue.js in its own process: ListObjectsV2 page by page +
//    BullMQ addBulk per page, nothing else;
//  - `scribe enqueue s3://…/calls/ --out s3://…/out-enq/ --json` (the CLI, in its own process), with
//    the JSON output of every 10th object already there, so the skip-if-done check runs and skips
//    10 000 of them; batch books, job ids, validation included.
// Both are timed from spawn to exit (wall clock, process start included for both). The row is the
// ratio raw ÷ scribe (≥ 0.7 wanted). Redis memory per 1 000 queued jobs: INFO memory used_memory
// after − before each enqueue, per job added.
//
//   node bench/enqueue.js              (after `npx tsc -b`; prints its rows and section)
//   BENCH_PROFILE=/tmp/prof node bench/enqueue.js   (the CLI also writes a --cpu-prof profile there)
//
// `run({ archive })` takes an archive made by bench/archive.js (shared with bench/manifest.js);
// without one it creates its own 100 000 objects.
'use strict';
const { join } = require('node:path');
const { ROOT } = require('./lib');
const { createArchive, loadAverage, mib, redisUsedMemory, runNode } = require('./archive');

const OUT = 'out-enq/';
/** Every SKIP_EVERY-th object's JSON output exists before the enqueue. */
const SKIP_EVERY = 10;
/** Bound on the project's Redis memory per 1 000 queued jobs (see the section). */
const REDIS_PER_1000_BOUND = 4 * 2 ** 20;

async function run(opts = {}) {
  const { loadConfig, outputKeyBase } = require(join(ROOT, 'packages/core/dist/index.js'));
  const IORedis = require('ioredis');
  const archive = opts.archive ?? (await createArchive({ objects: opts.objects ?? 100_000 }));
  const { bucket, keys, stack } = archive;
  try {
    const existing = keys.filter((_, i) => i % SKIP_EVERY === 0).map((k) => `${outputKeyBase(k, archive.prefix, OUT)}.json`);
    const existSeconds = await archive.putObjects(existing, () => '{}');
    console.log(`[bench] ${existing.length} outputs made to exist (${existSeconds.toFixed(1)} s)`);
    // The whole prefix in one call (what this scenario measures): a backlog window above its size.
    // A drip-fed batch enqueues one window and lets the workers feed the rest (test/fleet/drip-feed.test.ts).
    const env = { ...stack.serviceEnv, QUEUE_NAME: 'bench-enqueue', BACKLOG_PER_BUCKET: String(10 * keys.length) };
    loadConfig(env); // fails here, not in the child, on a bad env
    const redis = new IORedis(stack.redisUrl);

    console.log(`[bench] raw ListObjectsV2 + addBulk over s3://${bucket}/${archive.prefix}…`);
    const rawMem0 = await redisUsedMemory(redis);
    const raw = await runNode(join(__dirname, 'raw-enqueue.js'), [bucket, archive.prefix, 'raw-enqueue'], env);
    const rawMem1 = await redisUsedMemory(redis);
    if (raw.code !== 0) throw new Error(`raw-enqueue exited ${raw.code}`);
    const rawOut = JSON.parse(raw.stdout.trim());
    if (rawOut.jobs !== keys.length) throw new Error(`raw-enqueue added ${rawOut.jobs} jobs`);
    console.log(`[bench]   ${raw.seconds.toFixed(2)} s (list ${rawOut.listSeconds.toFixed(2)} s, addBulk ${rawOut.addSeconds.toFixed(2)} s)`);

    console.log(`[bench] scribe enqueue s3://${bucket}/${archive.prefix} --out s3://${bucket}/${OUT}…`);
    const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE] : [];
    const mem0 = await redisUsedMemory(redis);
    const cli = await runNode(join(ROOT, 'apps/producer/dist/cli.js'), ['enqueue', `s3://${bucket}/${archive.prefix}`, '--out', `s3://${bucket}/${OUT}`, '--json'], env, { nodeArgs: profile });
    const mem1 = await redisUsedMemory(redis);
    if (cli.code !== 0) throw new Error(`scribe enqueue exited ${cli.code}: ${cli.stdout}`);
    const summary = JSON.parse(cli.stdout.trim().split('\n').pop());
    const want = { listed: keys.length, added: keys.length - existing.length, skipped: existing.length, duplicates: 0, ignored: 0 };
    for (const [k, v] of Object.entries(want)) if (summary[k] !== v) throw new Error(`scribe enqueue: ${k} ${summary[k]}, expected ${v} (${cli.stdout})`);
    // Every job is in the queue and the books: waiting jobs of the bucket queue, the batch's total.
    const batch = await redis.hgetall(`scribe:bench-enqueue:batch:${summary.batchId}`).catch(() => ({}));
    console.log(`[bench]   ${cli.seconds.toFixed(2)} s, peak RSS ${mib(cli.peakRss).toFixed(0)} MiB; ${JSON.stringify(summary)}`);
    await redis.quit();

    const data = {
      objects: keys.length,
      skippedOutputs: existing.length,
      createSeconds: archive.createSeconds,
      createMethod: archive.createMethod,
      rawSeconds: raw.seconds,
      rawListSeconds: rawOut.listSeconds,
      rawAddSeconds: rawOut.addSeconds,
      rawRedisBytes: rawMem1 - rawMem0,
      rawPeakRss: raw.peakRss,
      scribeSeconds: cli.seconds,
      scribePeakRss: cli.peakRss,
      summary,
      batchTotal: batch.total !== undefined ? Number(batch.total) : undefined,
      redisBytes: mem1 - mem0,
      ratio: raw.seconds / cli.seconds,
      redisPer1000: ((mem1 - mem0) / summary.added) * 1000,
      rawRedisPer1000: ((rawMem1 - rawMem0) / rawOut.jobs) * 1000,
      loadavg: loadAverage(),
    };
    const rows = [
      {
        name: `enqueue of a ${keys.length}-object prefix (skip check, ${existing.length} outputs exist): raw ListObjectsV2 + addBulk ÷ scribe enqueue`,
        value: `${data.ratio.toFixed(2)} × (${raw.seconds.toFixed(1)} s ÷ ${cli.seconds.toFixed(1)} s)`,
        target: '≥ 0.7 ×',
        ok: data.ratio >= 0.7,
      },
      {
        name: 'Redis memory per 1 000 queued jobs (used_memory delta ÷ jobs added; raw addBulk in brackets)',
        value: `${mib(data.redisPer1000).toFixed(2)} MiB (${mib(data.rawRedisPer1000).toFixed(2)} MiB)`,
        target: `≤ ${mib(REDIS_PER_1000_BOUND)} MiB`,
        ok: data.redisPer1000 <= REDIS_PER_1000_BOUND,
      },
    ];
    return { rows, section: section(data), data };
  } finally {
    if (!opts.archive) await archive.stop();
  }
}

function section(d) {
  return `## Enqueue of a prefix

${d.objects} objects under 10 folders of one prefix in the S3 server (s3rver; created in ${d.createSeconds.toFixed(1)} s with ${d.createMethod}),
the JSON output of every ${SKIP_EVERY}th already written. Side by side, each in its own process, timed from spawn to exit:

- the obvious alternative, \`bench/raw-enqueue.js\`: ListObjectsV2 (1 000 keys a page, AWS SDK) and BullMQ \`addBulk\` per page, one after
  the other, nothing else: **${d.rawSeconds.toFixed(2)} s** (listing ${d.rawListSeconds.toFixed(2)} s, addBulk ${d.rawAddSeconds.toFixed(2)} s);
- \`scribe enqueue s3://…/calls/ --out s3://…/${OUT} --json\`, skip check included: **${d.scribeSeconds.toFixed(2)} s**
  (listed ${d.summary.listed}, added ${d.summary.added}, skipped ${d.summary.skipped}), peak RSS ${mib(d.scribePeakRss).toFixed(0)} MiB;
  ratio raw ÷ scribe **${d.ratio.toFixed(2)} ×**.

Redis memory (INFO memory \`used_memory\` after − before the enqueue, per job added): ${mib(d.redisPer1000).toFixed(2)} MiB per 1 000
jobs for \`scribe enqueue\` (BullMQ's job hash with the job spec, its place in the wait list, and the batch books'
entry), ${mib(d.rawRedisPer1000).toFixed(2)} MiB for the raw script's smaller jobs. Bound: ${mib(REDIS_PER_1000_BOUND)} MiB per 1 000, i.e. a
million-file backlog within 4 GiB of Redis.

Load average (1/5/15 min) at the end: ${d.loadavg}.
`;
}

module.exports = { run };

if (require.main === module) {
  run()
    .then(({ rows, section: md, data }) => {
      console.log(data);
      console.log(rows.map((r) => `${r.ok ? 'ok  ' : 'MISS'} ${r.name}: ${r.value} (target ${r.target})`).join('\n'));
      console.log(md);
      process.exit(rows.every((r) => r.ok) ? 0 : 1);
    })
    .catch((e) => {
      console.error('[bench] failed:', e);
      process.exit(1);
    });
}
