#!/usr/bin/env node
// Writes RELIABILITY.md's scenario tables from the figures `npm run chaos` left in test-output/chaos/.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const dir = path.join(__dirname, '..', '..', 'test-output', 'chaos');
const out = path.join(__dirname, '..', '..', 'RELIABILITY.md');
const runs = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'))) : [];
if (!runs.length) {
  console.error('no chaos figures in test-output/chaos: run `npm run chaos` first');
  process.exit(1);
}
const fmt = (o) => Object.entries(o).map(([k, v]) => `${k} ${v}`).join(', ') || '—';
const rows = runs.map((r) => [
  r.name,
  r.full ? 'full' : 'CI',
  r.jobs,
  fmt(r.faults),
  r.completed,
  fmt(r.failedByCode),
  r.lost,
  r.booksWrong,
  r.batchesHung,
  r.duplicateOutputWrites,
  r.duplicateWebhooks,
  r.overshoot,
  r.attemptsSpent,
  r.secondsFromLastFaultToEnd.toFixed(1),
  r.seconds.toFixed(0),
  fmt(r.notes ?? {}),
]);
const head = ['scenario', 'counts', 'jobs', 'faults injected', 'completed', 'failed (by code)', 'lost', 'books wrong', 'batches hung', 'duplicate output writes', 'duplicate webhooks (distinct ids)', 'overshoot', 'attempts spent', 's from last fault to batch end', 's total', 'notes'];
const table = [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
const start = '<!-- chaos:begin -->';
const end = '<!-- chaos:end -->';
const block = `${start}\nFrom the chaos suite (counts: full = \`npm run chaos\`, CI = the smaller counts of \`npm test\`; attempts spent counts every attempt BullMQ started and ended, the final one included, plus stalls) on ${new Date().toISOString().slice(0, 10)} (${os.cpus().length} cores, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} at the end):\n\n${table}\n${end}`;
const text = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : `# Reliability\n\n${start}\n${end}\n`;
fs.writeFileSync(out, text.includes(start) ? text.replace(new RegExp(`${start}[\\s\\S]*${end}`), block) : `${text}\n${block}\n`);
console.log(`wrote ${out} (${runs.length} scenarios)`);
