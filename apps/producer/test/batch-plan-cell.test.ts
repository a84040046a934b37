/** The fleet page's batch rows with a plan beside the progress (render.ts, the renderer the browser runs too). */
import type { PlanProgress } from '@scribe-fleet/core';
import type { BatchView, FleetView } from '../src/api/dashboard/fleet-view';
import { fleetRenderer } from '../src/api/dashboard/render';

const planProgress: PlanProgress = {
  planId: 'plan_0123456789abcdef',
  choice: 2,
  provider: 'deepgram',
  model: 'nova-3<script>',
  mode: 'batch',
  account: 'default',
  method: 'sampled',
  sameRouting: true,
  files: { planned: 100, batch: 100 },
  audioSeconds: { planned: { estimate: 36_000, low: 32_400, high: 39_600 }, done: 9_000, projected: 45_000, versus: 'above' },
  costUsd: { planned: { estimate: 2.58, low: 2.32, high: 2.84 }, usdPerMinute: 0.0043, done: 0.645, projected: 3.225, versus: 'above' },
  wallSeconds: { planned: { estimate: 600, low: 560, high: 640 }, elapsed: 200, etaSeconds: 600, projected: 800, versus: 'above' },
  plannedEndAt: '2026-12-07T10:10:00.000Z',
  projectedEndAt: '2026-12-07T10:13:20.000Z',
};

function batchRow(over: Partial<BatchView>): BatchView {
  return {
    id: 'b_20261207-100000_0a1b2c3d',
    status: 'running',
    outcome: 'running',
    out: 's3://b/out/',
    createdAt: '2026-12-07T10:00:00.000Z',
    source: 's3://b/in/',
    provider: 'deepgram',
    mode: 'batch',
    total: 100,
    listing: false,
    counts: { queued: 70, active: 5, completed: 25, failed: 0, cancelled: 0, skipped: 0 },
    done: 25,
    fraction: 0.25,
    audioSecondsDone: 9_000,
    audioSecondsTotalEstimate: 45_000,
    filesPerSecond: 0.125,
    etaSeconds: 600,
    ...over,
  };
}

const render = (batches: BatchView[]) => fleetRenderer().batches({ batches } as FleetView);

it('shows the plan beside the progress: planned, so far, projected, with the raw values and the side of the plan', () => {
  const html = render([batchRow({ planProgress })]);
  expect(html).toContain('<th>plan vs actual</th>');
  expect(html).toContain('data-testid="batch-plan" data-plan-id="plan_0123456789abcdef" data-choice="2"');
  expect(html).toMatch(/data-testid="plan-audio-planned" data-value="36000">10\.000 h <span class="sub">\(9\.000 h–11\.000 h\)<\/span>/);
  expect(html).toMatch(/data-testid="plan-audio-projected" data-value="45000" data-versus="above"/);
  expect(html).toMatch(/data-testid="plan-cost-done" data-value="0\.645">\$0\.6450</);
  expect(html).toMatch(/data-testid="plan-time-projected" data-value="800" data-versus="above" title="above the plan">13m 20s</);
  expect(html).toContain('(sampled)');
  // Strings from the plan are escaped.
  expect(html).toContain('nova-3&lt;script&gt;');
  expect(html).not.toContain('<script>');
});

it('shows nothing of a plan for a batch without one; an unpriced choice says so; nothing projected while listing', () => {
  const none = render([batchRow({})]);
  expect(none).toContain('<td class="plan-cell"></td>');
  expect(none).not.toContain('data-testid="batch-plan"');
  const listing = render([
    batchRow({ listing: true, planProgress: { ...planProgress, costUsd: null, sameRouting: false, audioSeconds: { ...planProgress.audioSeconds, projected: null, versus: null }, wallSeconds: { ...planProgress.wallSeconds, etaSeconds: null, projected: null, versus: null } } }),
  ]);
  expect(listing).toContain('data-testid="plan-cost-unpriced"');
  expect(listing).toContain('data-testid="plan-other-routing"');
  expect(listing).toMatch(/data-testid="plan-audio-projected" data-value="">—</);
  expect(listing).toMatch(/data-testid="plan-time-projected" data-value="">listing…</);
});
