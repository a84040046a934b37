/**
 * `scribe usage` as a table: one row per day (or batch) and provider/model/mode/account, with audio,
 * sessions, attempts, jobs ended and the estimated cost; then the totals.
 */
import type { UsageReport } from '@scribe-fleet/core/app/usage';
import { formatCount } from './progress';

/** Dollars with enough places for small figures (a minute of audio costs fractions of a cent). */
const usd = (n: number | null) => (n === null ? 'no price' : `$${n.toFixed(n >= 100 ? 2 : 4)}`);
/** Audio seconds as seconds (under a minute), or h:mm:ss. */
function audio(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  const t = Math.round(s);
  return `${Math.floor(t / 3600)}:${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}:${String(t % 60).padStart(2, '0')}`;
}

export function usageLines(r: UsageReport): string[] {
  const filter = Object.entries(r.filter).map(([k, v]) => `${k} ${v}`).join(', ');
  const title = `usage ${r.from} … ${r.to} by ${r.by}${filter ? ` (${filter})` : ''}`;
  if (!r.rows.length) return [title, 'no usage recorded'];
  const head = [r.by === 'day' ? 'day' : 'batch', 'provider', 'model', 'mode', 'account', 'audio', 'sessions', 'attempts', 'completed', 'failed', 'cost (est.)'];
  const rows = r.rows.map((row) => [
    'day' in row ? row.day : row.batchId,
    row.provider,
    row.model,
    row.mode,
    row.account,
    audio(row.audioSeconds),
    formatCount(row.sessions),
    formatCount(row.attempts),
    formatCount(row.completed),
    formatCount(row.failed),
    usd(row.estimatedCostUsd),
  ]);
  const t = r.totals;
  const total = ['total', '', '', '', '', audio(t.audioSeconds), formatCount(t.sessions), formatCount(t.attempts), formatCount(t.completed), formatCount(t.failed), usd(t.estimatedCostUsd)];
  const numeric = new Set([5, 6, 7, 8, 9, 10]);
  const widths = head.map((h, i) => Math.max(h.length, ...[...rows, total].map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((c, i) => (numeric.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [
    title,
    '',
    line(head),
    ...rows.map(line),
    line(total),
    ...(t.unpriced ? [`${t.unpriced} row(s) have no price in the table (PRICES_FILE, then the shipped defaults): not in the total cost`] : []),
    'cost: audio minutes × the price table now, an estimate, not a bill',
  ];
}
