/**
 * A plan as the CLI prints it: what the source holds, its audio (with the sample's interval), and one
 * row per choice compared: cap, worker processes, cost and wall time (each with its interval).
 */
import type { Plan } from '@scribe-fleet/core/app/plan-batch';
import { formatCount, formatDuration, formatHours } from './progress';

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) (v /= 1024), (u += 1);
  return `${v.toFixed(u ? 1 : 0)} ${units[u]}`;
}

const usd = (n: number) => `$${n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
const span = (r: { estimate: number; low: number; high: number }, f: (n: number) => string) => (r.low === r.high ? f(r.estimate) : `${f(r.estimate)} (${f(r.low)}–${f(r.high)})`);

export function planLines(plan: Plan): string[] {
  const { files, audio } = plan;
  const how =
    audio.method === 'exact'
      ? `every file measured (${formatCount(audio.fromHeader)} from headers)`
      : `95 % interval; sampled ${formatCount(audio.measured)} of ${formatCount(files.toDo)} files, seed ${audio.seed}, estimated ${audio.estimator === 'size' ? 'from every file\'s size' : 'as N × the sample mean'}`;
  const rows = plan.choices.map((c, i) => [
    String(i + 1),
    `${c.provider} ${c.model} ${c.mode}`,
    c.account,
    String(c.cap),
    String(c.workers),
    c.costUsd ? span(c.costUsd, usd) : 'unknown price',
    span(c.wallSeconds, formatDuration),
  ]);
  const head = ['#', 'choice', 'account', 'cap', 'workers', 'cost (USD)', 'time'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [
    `plan ${plan.planId}: ${plan.source} → ${plan.out}`,
    `files: ${formatCount(files.listed)} listed · ${formatCount(files.toDo)} to do (${bytes(files.bytes)}) · ${formatCount(files.done)} done (outputs exist) · ${formatCount(files.ignored)} ignored${files.refused ? ` · ${formatCount(files.refused)} refused (unsafe keys)` : ''}`,
    `audio: ${span(audio.seconds, formatHours)}, ${how}; longest file ${formatDuration(audio.longestSeconds)}${audio.unreadable ? `; ${formatCount(audio.unreadable)} measured files are not readable audio (they would fail)` : ''}`,
    '',
    line(head),
    ...rows.map(line),
    '',
    ...plan.choices.filter((c) => c.price).map((c) => `price ${c.provider} ${c.model} ${c.mode}: $${c.price!.usdPerMinute}/min${c.price!.perChannel ? ' per channel' : ''} (${c.price!.source}, ${c.price!.asOf})`),
    `run it: scribe enqueue --plan ${plan.planId}${plan.choices.length > 1 ? ' --choice N' : ''}`,
  ];
}
