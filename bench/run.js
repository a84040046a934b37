#!/usr/bin/env node
// `npm run bench`: every scenario of issue 12, each side by side with its obvious alternative in this
// one run; prints a table, writes BENCHMARKS.md (command, date, machine, load average, figures, ratios,
// targets, met) and exits 1 when a target is missed. `npm run bench -- <name> [<name> …]` runs some
// scenarios only and writes .scribe/bench-<names>.md instead (BENCHMARKS.md is a whole run's record).
//
// Each scenario is a module bench/<name>.js exporting `run(opts)` → { rows, section, data }; a row is
// { name, value, target, ok }. Run one alone with `node bench/<name>.js`.
'use strict';
const { mkdirSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const os = require('node:os');
const { ROOT } = require('./lib');

/** In order: quick scenarios first; the archive scenarios share one 100 000-object prefix. */
const SCENARIOS = {
  caps: { what: 'cap utilisation at cap 100 and cap 5 (3 worker processes, 2 s requests)', run: () => require('./caps').run() },
  throughput: { what: 'per-job throughput against a plain script', run: () => require('./throughput').run() },
  pacing: { what: 'pacing of 500 streams, null sink and WebSockets, against the naive and 250 ms pacers', run: () => require('./pacing').run() },
  memory: { what: 'worker RSS on a 2 GB WAV, Deepgram and OpenAI batch, against a plain S3 GET → http.request pipe', run: () => require('./memory').run() },
  enqueue: { what: 'enqueue of a 100 000-object prefix against raw ListObjectsV2 + addBulk; Redis memory per 1 000 jobs', run: (ctx) => require('./enqueue').run({ archive: ctx.archive }), archive: true },
  manifest: { what: 'a 100 000-line manifest through the API', run: (ctx) => require('./manifest').run({ archive: ctx.archive }), archive: true },
  recogniser: { what: 'local provider against the recogniser alone', run: () => require('./recogniser').run() },
};

async function main() {
  const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const unknown = asked.filter((a) => !(a in SCENARIOS));
  if (unknown.length) {
    console.error(`[bench] unknown scenario(s): ${unknown.join(', ')}; known: ${Object.keys(SCENARIOS).join(', ')}`);
    process.exit(2);
  }
  const names = asked.length ? Object.keys(SCENARIOS).filter((n) => asked.includes(n)) : Object.keys(SCENARIOS);
  const started = new Date();
  const load0 = os.loadavg();
  const ctx = {};
  const results = [];
  for (const name of names) {
    const s = SCENARIOS[name];
    if (s.archive && !ctx.archive) {
      console.log('[bench] creating the shared 100 000-object archive…');
      ctx.archive = await require('./archive').createArchive({ objects: 100_000 });
    }
    console.log(`[bench] ${name}: ${s.what}…`);
    const t0 = performance.now();
    try {
      const r = await s.run(ctx);
      results.push({ name, seconds: (performance.now() - t0) / 1000, ...r });
    } catch (e) {
      console.error(`[bench] ${name} failed:`, e);
      results.push({ name, seconds: (performance.now() - t0) / 1000, rows: [{ name: `${name}: the scenario ran`, value: `failed: ${e.message}`, target: 'runs', ok: false }], section: `## ${name}\n\nThe scenario failed: ${e.message}\n` });
    }
    const last = results[results.length - 1];
    for (const row of last.rows) console.log(`[bench]   ${row.ok ? 'met   ' : 'MISSED'} ${row.name}: ${row.value} (target ${row.target})`);
    if (s.archive && !names.slice(names.indexOf(name) + 1).some((n) => SCENARIOS[n].archive)) {
      await ctx.archive.stop();
      ctx.archive = undefined;
    }
  }
  const load1 = os.loadavg();
  const rows = results.flatMap((r) => r.rows.map((row) => ({ ...row, scenario: r.name })));
  const command = asked.length ? `npm run bench -- ${names.join(' ')}` : 'npm run bench';
  const md = `# Benchmarks

Produced by \`${command}\` (\`bench/run.js\`) on ${started.toISOString()}: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}.
Load average (1/5/15 min) at the start ${load0.map((x) => x.toFixed(2)).join(' ')}, at the end ${load1.map((x) => x.toFixed(2)).join(' ')}; the run took ${((Date.now() - started.getTime()) / 60000).toFixed(1)} min
(${results.map((r) => `${r.name} ${r.seconds.toFixed(0)} s`).join(', ')}).

Every figure is measured beside its alternative in this one run (ratios, not absolute times, are what
carry over to another machine; here 2 cores are shared by Redis, the S3 server, the emulators and the
processes under test). \`npm run bench\` exits 1 when a target is missed; \`npm run bench -- <name>\` runs
one scenario (${Object.keys(SCENARIOS).join(', ')}).

| scenario | measure | result | target | met |
|---|---|---|---|---|
${rows.map((r) => `| ${r.scenario} | ${r.name} | ${r.value} | ${r.target} | ${r.ok ? 'yes' : '**no**'} |`).join('\n')}

${results.map((r) => r.section.trim()).join('\n\n')}
`;
  const file = asked.length ? join(ROOT, '.scribe', `bench-${names.join('-')}.md`) : join(ROOT, 'BENCHMARKS.md');
  mkdirSync(join(ROOT, '.scribe'), { recursive: true });
  writeFileSync(file, md);
  console.log(md);
  console.log(`[bench] wrote ${file}`);
  const missed = rows.filter((r) => !r.ok);
  if (missed.length) {
    console.error(`[bench] ${missed.length} target(s) missed: ${missed.map((r) => `${r.scenario}: ${r.name}`).join('; ')}`);
    process.exit(1);
  }
  process.exit(0);
}

main().catch((e) => {
  console.error('[bench] failed:', e);
  process.exit(1);
});
