/**
 * The fleet page's HTML sections, rendered from a FleetView (GET /v1/fleet). One renderer serves both
 * sides: the server renders the first page with it, and the page's inline script re-renders the
 * sections with the same code (its source, `fleetRenderer.toString()`) every time it polls.
 *
 * So `fleetRenderer` must stay self-contained: no imports or module-level values used inside it at run
 * time (types are fine, they are erased), nothing the browser lacks. Every string from the data is
 * escaped (batch sources and ids come from users).
 */
import type { BucketView, FleetView } from './fleet-view';

export type SectionName = 'summary' | 'caps' | 'throughput' | 'audio' | 'failures' | 'batches' | 'queues';

export type FleetRenderer = Record<SectionName, (view: FleetView) => string>;

/* istanbul ignore next -- shipped to the browser as source: coverage counters would break it there */
export function fleetRenderer(): FleetRenderer {
  const esc = (v: unknown): string =>
    String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
  const int = (n: number) => Math.round(n).toLocaleString('en-US');
  const fixed = (n: number, d: number) => n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
  const duration = (s: number | null | undefined): string => {
    if (s === null || s === undefined || !Number.isFinite(s)) return '—';
    const t = Math.max(0, Math.round(s));
    const h = Math.floor(t / 3600);
    const m = Math.floor((t % 3600) / 60);
    const sec = t % 60;
    if (h) return `${h}h ${String(m).padStart(2, '0')}m`;
    if (m) return `${m}m ${String(sec).padStart(2, '0')}s`;
    return `${sec}s`;
  };
  const hhmm = (t: number) => new Date(t).toISOString().slice(11, 16);
  // A number cell: the raw value in data-value (tests and scripts read it), formatted text for people.
  const cell = (testid: string, value: number, text = int(value), extra = '') => `<td class="num" data-testid="${testid}" data-value="${value}"${extra}>${text}</td>`;

  /** Bars of a series as inline SVG (no chart library, no CDN). */
  const bars = (testid: string, points: Array<{ t: number; v: number; label: string }>, color: string, floor: number): string => {
    const w = 720;
    const h = 90;
    const max = Math.max(floor, ...points.map((p) => p.v));
    const bw = w / Math.max(1, points.length);
    const rects = points
      .map((p, i) => {
        const bh = p.v > 0 ? Math.max(1, (p.v / max) * (h - 12)) : 0;
        return `<rect x="${(i * bw + 0.5).toFixed(1)}" y="${(h - bh).toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${bh.toFixed(1)}" fill="${color}"><title>${esc(p.label)}</title></rect>`;
      })
      .join('');
    const first = points[0];
    const last = points[points.length - 1];
    return (
      `<svg data-testid="${testid}" class="chart" viewBox="0 0 ${w} ${h + 14}" preserveAspectRatio="none" role="img" aria-label="${esc(testid)}">` +
      `<line x1="0" y1="${h}" x2="${w}" y2="${h}" stroke="#bbb"/>${rects}` +
      `<text x="0" y="${h + 12}" font-size="10" fill="#666">${first ? hhmm(first.t) : ''}</text>` +
      `<text x="${w}" y="${h + 12}" font-size="10" fill="#666" text-anchor="end">${last ? `${hhmm(last.t)} UTC` : ''}</text>` +
      `<text x="2" y="10" font-size="10" fill="#666">max ${esc(max % 1 ? fixed(max, 3) : int(max))}</text></svg>`
    );
  };

  const slotsText = (b: BucketView) => (b.slots ? `${int(b.slots.inUse)} / ${int(b.slots.effective)} / ${int(b.slots.configured)}` : 'Redis unavailable');

  const STATES = ['completed', 'failed', 'cancelled', 'skipped', 'active', 'queued'] as const;

  // A batch's plan beside its progress: plan | so far | projected, for audio hours, cost and wall time.
  // Decimals by the largest figure shown together (`ref`), so a range reads in one precision.
  const hours = (s: number, ref = s) => `${fixed(s / 3600, ref < 360_000 ? 3 : 1)} h`;
  const money = (usd: number, ref = usd) => `$${fixed(usd, ref < 1 ? 4 : 2)}`;
  const range = (r: { estimate: number; low: number; high: number }, f: (n: number, ref?: number) => string) =>
    r.low === r.high ? f(r.estimate) : `${f(r.estimate, r.high)} <span class="sub">(${f(r.low, r.high)}–${f(r.high)})</span>`;
  const figure = (testid: string, value: number | null, text: string, versus?: string | null) =>
    `<td class="num${versus ? ` plan-${versus}` : ''}" data-testid="${testid}" data-value="${value ?? ''}"${versus ? ` data-versus="${esc(versus)}" title="${esc(versus)} the plan"` : ''}>${text}</td>`;
  const planCell = (b: FleetView['batches'][number]): string => {
    const p = b.planProgress;
    if (!p) return '<td class="plan-cell"></td>';
    const projecting = b.status === 'running' ? 'projected' : 'actual';
    const rows =
      `<tr data-testid="plan-audio"><th>audio</th>${figure('plan-audio-planned', p.audioSeconds.planned.estimate, range(p.audioSeconds.planned, hours))}` +
      figure('plan-audio-done', p.audioSeconds.done, hours(p.audioSeconds.done)) +
      figure('plan-audio-projected', p.audioSeconds.projected, p.audioSeconds.projected === null ? '—' : hours(p.audioSeconds.projected), p.audioSeconds.versus) +
      `</tr>` +
      (p.costUsd
        ? `<tr data-testid="plan-cost"><th>cost</th>${figure('plan-cost-planned', p.costUsd.planned.estimate, range(p.costUsd.planned, money))}` +
          figure('plan-cost-done', p.costUsd.done, money(p.costUsd.done)) +
          figure('plan-cost-projected', p.costUsd.projected, p.costUsd.projected === null ? '—' : money(p.costUsd.projected), p.costUsd.versus) +
          `</tr>`
        : `<tr data-testid="plan-cost"><th>cost</th><td colspan="3" class="sub" data-testid="plan-cost-unpriced">no price for this choice</td></tr>`) +
      `<tr data-testid="plan-time"><th>time</th>${figure('plan-time-planned', p.wallSeconds.planned.estimate, range(p.wallSeconds.planned, duration))}` +
      figure('plan-time-elapsed', p.wallSeconds.elapsed, duration(p.wallSeconds.elapsed)) +
      figure('plan-time-projected', p.wallSeconds.projected, p.wallSeconds.projected === null ? (b.listing ? 'listing…' : '—') : duration(p.wallSeconds.projected), p.wallSeconds.versus) +
      `</tr>`;
    return (
      `<td class="plan-cell" data-testid="batch-plan" data-plan-id="${esc(p.planId)}" data-choice="${p.choice}">` +
      `<div class="sub">plan <code>${esc(p.planId)}</code> choice ${p.choice}: ${esc(p.provider)} ${esc(p.model)} · ${esc(p.mode)}${p.method === 'sampled' ? ' (sampled)' : ''}` +
      `${p.sameRouting ? '' : ' <b data-testid="plan-other-routing">(the batch runs another provider, model or mode)</b>'}</div>` +
      `<table class="plan-table"><thead><tr><th></th><th>plan</th><th>so far</th><th>${projecting}</th></tr></thead><tbody>${rows}</tbody></table></td>`
    );
  };

  return {
    summary(v) {
      const inUse = v.buckets.reduce((n, b) => n + (b.slots?.inUse ?? 0), 0);
      const running = v.batches.filter((b) => b.status === 'running').length;
      const tile = (testid: string, label: string, value: string, raw: number) =>
        `<div class="tile"><div class="tile-label">${label}</div><div class="tile-value" data-testid="${testid}" data-value="${raw}">${value}</div></div>`;
      return (
        tile('summary-backlog', 'Backlog (jobs waiting)', int(v.backlog.total), v.backlog.total) +
        tile('summary-slots', 'Cap slots in use', int(inUse), inUse) +
        tile('summary-throughput', 'Jobs finished, last minute', int(v.throughput.lastMinute), v.throughput.lastMinute) +
        tile('summary-audio', 'Audio hours, last 24 h', fixed(v.audio.last24h, 2), v.audio.last24h) +
        tile('summary-batches-running', 'Running batches (recent)', int(running), running)
      );
    },

    caps(v) {
      if (!v.buckets.length) return '<p class="empty" data-testid="caps-empty">No cap buckets yet: enqueue a batch.</p>';
      const rows = v.buckets
        .map((b) => {
          const pct = b.slots && b.slots.configured ? Math.min(100, (b.slots.inUse / b.slots.configured) * 100) : 0;
          const effPct = b.slots && b.slots.configured ? Math.min(100, (b.slots.effective / b.slots.configured) * 100) : 100;
          return (
            `<tr data-testid="cap-row" data-bucket="${esc(b.bucket)}">` +
            `<td><code>${esc(b.bucket)}</code></td>` +
            `<td class="slots"><div class="meter" title="in use / effective / configured"><div class="meter-eff" style="width:${effPct.toFixed(1)}%"></div><div class="meter-use" style="width:${pct.toFixed(1)}%"></div></div>` +
            `<span data-testid="cap-slots">${slotsText(b)}</span></td>` +
            cell('cap-in-use', b.slots?.inUse ?? 0) +
            cell('cap-effective', b.slots?.effective ?? 0) +
            cell('cap-configured', b.slots?.configured ?? 0) +
            cell('queue-waiting', b.counts.waiting) +
            cell('queue-prioritized', b.counts.prioritized) +
            cell('queue-delayed', b.counts.delayed) +
            cell('queue-active', b.counts.active) +
            cell('queue-backlog', b.backlog) +
            cell('queue-completed', b.counts.completed) +
            cell('queue-failed', b.counts.failed) +
            cell('queue-desired-workers', b.desiredWorkers) +
            `</tr>`
          );
        })
        .join('');
      return (
        `<table data-testid="caps-table"><thead><tr><th>cap bucket</th><th>slots: in use / effective / configured</th>` +
        `<th>in use</th><th>effective</th><th>configured</th><th>waiting</th><th>prioritized</th><th>delayed</th><th>active</th><th>backlog</th><th>completed</th><th>failed</th><th title="worker processes this bucket can keep busy">workers</th></tr></thead><tbody>${rows}</tbody></table>`
      );
    },

    throughput(v) {
      const pts = v.throughput.perMinute.map((m) => ({ t: m.t, v: m.completed + m.failed + m.cancelled, label: `${hhmm(m.t)} UTC: ${m.completed} completed, ${m.failed} failed, ${m.cancelled} cancelled` }));
      return (
        `<p>Jobs finished per minute, last hour. Last minute: <b data-testid="throughput-last-minute" data-value="${v.throughput.lastMinute}">${int(v.throughput.lastMinute)}</b>; ` +
        `last hour: <b data-testid="throughput-last-hour" data-value="${v.throughput.lastHour}">${int(v.throughput.lastHour)}</b> ` +
        `(${fixed(v.throughput.lastHour / 60, 1)}/min). Attempts retried after a transient error: <b data-testid="throughput-retried" data-value="${v.throughput.retriedLastHour}">${int(v.throughput.retriedLastHour)}</b>; ` +
        `re-scheduled after a provider 429: <b data-testid="throughput-rate-limited" data-value="${v.throughput.rateLimitedLastHour}">${int(v.throughput.rateLimitedLastHour)}</b>.</p>${bars('throughput-chart', pts, '#2f7ed8', 1)}`
      );
    },

    audio(v) {
      const pts = v.audio.hoursPerHour.map((h) => ({ t: h.t, v: h.hours, label: `${hhmm(h.t)} UTC: ${fixed(h.hours, 3)} audio hours` }));
      return (
        `<p>Audio hours transcribed per hour, last 24 hours. Total: <b data-testid="audio-hours-24h" data-value="${v.audio.last24h}">${fixed(v.audio.last24h, 3)}</b> h ` +
        `(${int(v.audio.last24h * 3600)} s).</p>${bars('audio-chart', pts, '#4a9e5c', 0.001)}`
      );
    },

    failures(v) {
      if (!v.failures.length) return '<p class="empty" data-testid="failures-empty">No failures in the last 24 hours.</p>';
      const rows = v.failures.map((f) => `<tr data-testid="failure-row" data-code="${esc(f.code)}"><td><code>${esc(f.code)}</code></td>${cell('failure-count', f.count)}</tr>`).join('');
      return `<table data-testid="failures-table"><thead><tr><th>error code</th><th>jobs (24 h)</th></tr></thead><tbody>${rows}</tbody></table>`;
    },

    batches(v) {
      if (!v.batches.length) return '<p class="empty" data-testid="batches-empty">No batches yet.</p>';
      const rows = v.batches
        .map((b) => {
          const segs = STATES.map((s) => {
            const w = b.total ? (b.counts[s] / b.total) * 100 : 0;
            return w > 0 ? `<div class="seg seg-${s}" style="width:${w.toFixed(2)}%" title="${s}: ${b.counts[s]}"></div>` : '';
          }).join('');
          const counts = STATES.map((s) => `<span class="count count-${s}" title="${s}">${s} <b data-testid="batch-count" data-state="${s}" data-value="${b.counts[s]}">${int(b.counts[s])}</b></span>`).join(' ');
          const audio = b.audioSecondsTotalEstimate !== null && b.status === 'running' ? `${duration(b.audioSecondsDone)} of ~${duration(b.audioSecondsTotalEstimate)}` : duration(b.audioSecondsDone);
          const eta = b.status === 'running' ? (b.listing ? 'listing…' : duration(b.etaSeconds)) : '—';
          return (
            `<tr data-testid="batch-row" data-batch-id="${esc(b.id)}">` +
            `<td><code>${esc(b.id)}</code><div class="sub">${esc(b.provider)} · ${esc(b.mode)} · ${esc(b.source)}</div><div class="sub" data-testid="batch-out">→ ${esc(b.out)}</div><div class="sub">created ${esc(b.createdAt.replace('T', ' ').slice(0, 19))} UTC</div></td>` +
            `<td data-testid="batch-status" data-status="${esc(b.status)}" class="status status-${esc(b.outcome.replace(/[^a-z]+/g, '-'))}"${b.pausedReason ? ` title="${esc(b.pausedReason)}"` : ''}>${esc(b.outcome)}</td>` +
            `<td class="progress-cell"><div class="bar" data-testid="batch-progress" data-value="${b.fraction}">${segs}</div>` +
            `<div class="sub"><span data-testid="batch-done" data-value="${b.done}">${int(b.done)}</span> / <span data-testid="batch-total" data-value="${b.total}">${int(b.total)}</span> done (${fixed(b.fraction * 100, 0)} %) · ${counts}</div></td>` +
            planCell(b) +
            `<td data-testid="batch-audio-seconds" data-value="${b.audioSecondsDone}">${audio}</td>` +
            `<td data-testid="batch-eta" data-value="${b.etaSeconds ?? ''}">${eta}</td>` +
            `</tr>`
          );
        })
        .join('');
      return `<table data-testid="batches-table"><thead><tr><th>batch</th><th>status</th><th>progress</th><th>plan vs actual</th><th>audio</th><th>ETA</th></tr></thead><tbody>${rows}</tbody></table>`;
    },

    queues(v) {
      const rows = v.queues
        .map(
          (q) =>
            `<tr data-testid="aux-queue-row" data-queue="${esc(q.name)}"><td><code>${esc(q.name)}</code> (${esc(q.role)})</td>` +
            cell('aux-waiting', q.counts.waiting + q.counts.prioritized) +
            cell('aux-delayed', q.counts.delayed) +
            cell('aux-active', q.counts.active) +
            cell('aux-completed', q.counts.completed) +
            cell('aux-failed', q.counts.failed) +
            `</tr>`,
        )
        .join('');
      return `<table data-testid="aux-queues-table"><thead><tr><th>queue</th><th>waiting</th><th>delayed</th><th>active</th><th>completed</th><th>failed</th></tr></thead><tbody>${rows}</tbody></table>`;
    },
  };
}

export const SECTIONS: SectionName[] = ['summary', 'caps', 'throughput', 'audio', 'failures', 'batches', 'queues'];
