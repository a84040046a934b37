/**
 * A batch beside its plan (domain/plan-progress.ts), and the plan link of a create request
 * (app/validate.ts): pure, no services.
 */
import { batchProgress, type BatchRecord } from '../src/domain/batch';
import { parsePlanLink, planProgress, versusPlan, type PlannedFigures } from '../src/domain/plan-progress';
import { assertPlanLink, parseFeedRequest, storedFeedRequest, validateCreateBatch, validatePlanRequest } from '../src/app/validate';

const PLAN_ID = 'plan_0123456789abcdef';
const T0 = Date.parse('2026-12-07T10:00:00Z');

/** A plan of 100 files, 10 h of audio (9–11 h), two choices: one priced, one not. */
const plan: PlannedFigures = {
  planId: PLAN_ID,
  files: { toDo: 100 },
  audio: { method: 'sampled', seconds: { estimate: 36_000, low: 32_400, high: 39_600 } },
  choices: [
    { provider: 'deepgram', model: 'nova-3', mode: 'batch', account: 'default', price: { usdPerMinute: 0.0043 }, costUsd: { estimate: 2.58, low: 2.32, high: 2.84 }, wallSeconds: { estimate: 600, low: 560, high: 640 } },
    { provider: 'local', model: 'default', mode: 'stream', account: 'default', price: null, costUsd: null, wallSeconds: { estimate: 3600, low: 3240, high: 3960 } },
  ],
};

function batch(over: Partial<BatchRecord> = {}): BatchRecord {
  return {
    id: 'b_20261207-100000_0a1b2c3d',
    createdAt: new Date(T0).toISOString(),
    status: 'running',
    source: 's3://audio/in/',
    out: 's3://audio/out/',
    provider: 'deepgram',
    model: 'nova-3',
    mode: 'batch',
    total: 100,
    bytesTotal: 1_000_000,
    bytesDone: 250_000,
    audioSecondsDone: 9_900,
    counts: { queued: 70, active: 5, completed: 25, failed: 0, cancelled: 0, skipped: 0 },
    plan: { id: PLAN_ID, choice: 1 },
    ...over,
  };
}

describe('planProgress', () => {
  it('puts the plan beside a running batch: audio, cost at the plan price, wall time against elapsed + ETA', () => {
    const b = batch();
    const now = T0 + 200_000; // 200 s in, 25 of 100 files done
    const p = planProgress(plan, b.plan!, b, batchProgress(b, now), now)!;
    expect(p).toMatchObject({ planId: PLAN_ID, choice: 1, provider: 'deepgram', model: 'nova-3', mode: 'batch', method: 'sampled', sameRouting: true, files: { planned: 100, batch: 100 } });
    // Projected audio: 9 900 s per 250 kB × 1 MB = 39 600 s, the top of the interval: within.
    expect(p.audioSeconds).toEqual({ planned: plan.audio.seconds, done: 9_900, projected: 39_600, versus: 'within' });
    expect(p.costUsd!.done).toBeCloseTo((9_900 / 60) * 0.0043, 10);
    expect(p.costUsd!.projected).toBeCloseTo((39_600 / 60) * 0.0043, 10);
    expect(p.costUsd).toMatchObject({ planned: plan.choices[0]!.costUsd, usdPerMinute: 0.0043, versus: 'within' });
    // 25 files in 200 s: 75 more take 600 s; 800 s in all against 600 planned (640 at most): above.
    expect(p.wallSeconds).toEqual({ planned: plan.choices[0]!.wallSeconds, elapsed: 200, etaSeconds: 600, projected: 800, versus: 'above' });
    expect(p.plannedEndAt).toBe(new Date(T0 + 600_000).toISOString());
    expect(p.projectedEndAt).toBe(new Date(now + 600_000).toISOString());
  });

  it('more audio than the interval is above it, less is below; nothing projected before the first byte', () => {
    const more = batch({ audioSecondsDone: 12_000 }); // → 48 000 s projected
    expect(planProgress(plan, more.plan!, more, batchProgress(more, T0 + 1000), T0 + 1000)!.audioSeconds.versus).toBe('above');
    const less = batch({ audioSecondsDone: 5_000 }); // → 20 000 s
    const l = planProgress(plan, less.plan!, less, batchProgress(less, T0 + 1000), T0 + 1000)!;
    expect([l.audioSeconds.versus, l.costUsd!.versus]).toEqual(['below', 'below']);
    const none = batch({ bytesDone: 0, audioSecondsDone: 0, counts: { queued: 100, active: 0, completed: 0, failed: 0, cancelled: 0, skipped: 0 } });
    const n = planProgress(plan, none.plan!, none, batchProgress(none, T0 + 1000), T0 + 1000)!;
    expect(n.audioSeconds).toMatchObject({ done: 0, projected: null, versus: null });
    expect(n.costUsd).toMatchObject({ done: 0, projected: null, versus: null });
    expect(n.wallSeconds).toMatchObject({ elapsed: 1, etaSeconds: null, projected: null, versus: null });
    expect(n.projectedEndAt).toBeNull();
  });

  it('projects nothing while the batch is still listing (its total and bytes still grow)', () => {
    const b = batch({ listing: true });
    const p = planProgress(plan, b.plan!, b, batchProgress(b, T0 + 200_000), T0 + 200_000)!;
    expect(p.audioSeconds).toMatchObject({ done: 9_900, projected: null, versus: null });
    expect(p.wallSeconds).toMatchObject({ elapsed: 200, projected: null, etaSeconds: null });
  });

  it('a finished batch: the actual figures, its wall time from creation to finish', () => {
    const finishedAt = new Date(T0 + 590_000).toISOString();
    const b = batch({ status: 'finished', finishedAt, bytesDone: 1_000_000, audioSecondsDone: 36_100, counts: { queued: 0, active: 0, completed: 98, failed: 2, cancelled: 0, skipped: 0 } });
    const p = planProgress(plan, b.plan!, b, batchProgress(b, T0 + 900_000), T0 + 900_000)!;
    expect(p.audioSeconds).toMatchObject({ done: 36_100, projected: 36_100, versus: 'within' });
    expect(p.wallSeconds).toEqual({ planned: plan.choices[0]!.wallSeconds, elapsed: 590, etaSeconds: null, projected: 590, versus: 'within' });
    expect(p.projectedEndAt).toBe(finishedAt);
  });

  it('an exact plan (a point) allows 1 %; a choice without a price has no cost; another routing is flagged', () => {
    const exact: PlannedFigures = { ...plan, audio: { method: 'exact', seconds: { estimate: 100, low: 100, high: 100 } } };
    expect(versusPlan(100.9, exact.audio.seconds)).toBe('within');
    expect(versusPlan(101.1, exact.audio.seconds)).toBe('above');
    expect(versusPlan(98.9, exact.audio.seconds)).toBe('below');
    expect(versusPlan(null, exact.audio.seconds)).toBeNull();
    const b = batch({ plan: { id: PLAN_ID, choice: 2 } });
    const p = planProgress(plan, b.plan!, b, batchProgress(b, T0 + 1000), T0 + 1000)!;
    expect(p.costUsd).toBeNull();
    expect(p).toMatchObject({ provider: 'local', mode: 'stream', sameRouting: false });
  });

  it('no comparison for a choice the plan does not have, or a link to another plan', () => {
    const b = batch({ plan: { id: PLAN_ID, choice: 3 } });
    expect(planProgress(plan, b.plan!, b, batchProgress(b), Date.now())).toBeNull();
    const other = batch({ plan: { id: 'plan_ffffffffffffffff', choice: 1 } });
    expect(planProgress(plan, other.plan!, other, batchProgress(other), Date.now())).toBeNull();
  });
});

describe('the plan link', () => {
  it('is read back defensively: a damaged field is no link', () => {
    expect(parsePlanLink(JSON.stringify({ id: PLAN_ID, choice: 2 }))).toEqual({ id: PLAN_ID, choice: 2 });
    expect(parsePlanLink({ id: PLAN_ID, choice: 1 })).toEqual({ id: PLAN_ID, choice: 1 });
    for (const bad of [undefined, '', '{', 'null', '[]', '"plan_0123456789abcdef"', JSON.stringify({ id: 'plan_x', choice: 1 }), JSON.stringify({ id: PLAN_ID, choice: 0 }), JSON.stringify({ id: PLAN_ID, choice: 1.5 }), JSON.stringify({ id: PLAN_ID })]) {
      expect(parsePlanLink(bad)).toBeUndefined();
    }
  });

  it('is validated with the request: a plan id, a choice from 1 to 20, nothing else', () => {
    const req = { source: 's3://audio/in/', out: 's3://audio/out/' };
    expect(() => validateCreateBatch({ S3_ALLOWED_BUCKETS: [] }, { ...req, plan: { id: PLAN_ID, choice: 1 } })).not.toThrow();
    expect(() => assertPlanLink({ id: PLAN_ID, choice: 20 })).not.toThrow();
    for (const [bad, message] of [
      [{ id: 'plan_nope', choice: 1 }, /not a plan id/],
      [{ id: PLAN_ID, choice: 0 }, /plan\.choice must be an integer from 1 to 20/],
      [{ id: PLAN_ID, choice: 21 }, /plan\.choice/],
      [{ id: PLAN_ID, choice: '1' }, /plan\.choice/],
      [{ id: PLAN_ID, choice: 1, extra: true }, /unknown field "extra"/],
      ['plan_0123456789abcdef', /plan must be \{id, choice\}/],
      [null, /plan must be/],
    ] as const) {
      expect(() => validateCreateBatch({ S3_ALLOWED_BUCKETS: [] }, { ...req, plan: bad as never })).toThrow(message);
    }
    // A plan is not made from a plan.
    expect(() => validatePlanRequest({ S3_ALLOWED_BUCKETS: [] }, { ...req, plan: { id: PLAN_ID, choice: 1 } })).toThrow(/cannot name a plan/);
  });

  it('stays on the record, not in a drip-fed batch\'s stored request (whose schema is strict)', () => {
    const req = { source: 's3://audio/in/', out: 's3://audio/out/', plan: { id: PLAN_ID, choice: 1 } };
    const stored = storedFeedRequest(req);
    expect(JSON.parse(stored)).not.toHaveProperty('plan');
    expect(parseFeedRequest({ S3_ALLOWED_BUCKETS: [] }, stored).req).toEqual({ source: 's3://audio/in/', out: 's3://audio/out/' });
  });
});
