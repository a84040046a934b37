/** The usage book's pure parts: days, increments, rows and totals, the query's rules, the field encoding, a batch's spend. */
import { listenQuery } from '../src/adapters/providers/deepgram';
import { parseUsageField, usageField } from '../src/adapters/redis/usage-book';
import { readUsage } from '../src/app/usage';
import { batchSpend } from '../src/app/finalize-batch';
import { MAX_USAGE_DAYS, validateUsageQuery } from '../src/app/validate';
import { DEFAULT_PRICES, priceFor, type PriceEntry } from '../src/domain/prices';
import { attemptIncrement, daysBetween, dayMinus, isUsageDay, sessionIncrement, usageDay, usageRows, zeroCounts, type UsageRecord } from '../src/domain/usage';
import type { UsageStore } from '../src/ports/usage-store';

const BATCH = 'b_20261207-120000_0a1b2c3d';
const OTHER = 'b_20261208-090000_deadbeef';
const spec = { provider: 'deepgram', model: 'nova-3', mode: 'batch', account: 'proj-a', batchId: BATCH };
const NOON = Date.parse('2026-12-07T12:00:00Z');

describe('days', () => {
  it('are UTC calendar days, ranges include both ends', () => {
    expect(usageDay(Date.parse('2026-12-07T23:59:59.999Z'))).toBe('2026-12-07');
    expect(usageDay(Date.parse('2026-12-08T00:00:00Z'))).toBe('2026-12-08');
    expect(isUsageDay('2026-02-28')).toBe(true);
    expect(isUsageDay('2028-02-29')).toBe(true);
    for (const bad of ['2026-02-29', '2026-02-30', '2026-13-01', '2026-1-01', '20261201', 'today', 7]) expect({ bad, ok: isUsageDay(bad) }).toEqual({ bad, ok: false });
    expect(daysBetween('2026-12-30', '2027-01-02')).toEqual(['2026-12-30', '2026-12-31', '2027-01-01', '2027-01-02']);
    expect(daysBetween('2026-03-28', '2026-03-30')).toHaveLength(3);
    expect(dayMinus('2026-03-01', 1)).toBe('2026-02-28');
  });
});

describe('increments', () => {
  it('a session: one session under the job\'s key, day and batch', () => {
    expect(sessionIncrement(spec, NOON)).toEqual({ day: '2026-12-07', key: { provider: 'deepgram', model: 'nova-3', mode: 'batch', account: 'proj-a' }, batchId: BATCH, counts: { sessions: 1 } });
  });
  it('an attempt end: one attempt, and the job\'s end with its audio seconds when it completed', () => {
    expect(attemptIncrement(spec, { outcome: 'completed', audioSeconds: 12.5 }, NOON).counts).toEqual({ attempts: 1, completed: 1, audioSeconds: 12.5 });
    expect(attemptIncrement(spec, { outcome: 'failed' }, NOON).counts).toEqual({ attempts: 1, failed: 1 });
    expect(attemptIncrement(spec, { outcome: 'cancelled' }, NOON).counts).toEqual({ attempts: 1, cancelled: 1 });
    expect(attemptIncrement(spec, { outcome: 'retry' }, NOON).counts).toEqual({ attempts: 1 });
    expect(attemptIncrement(spec, { outcome: 'rate_limited' }, NOON).counts).toEqual({ attempts: 1 });
  });
  it('only a well-formed batch id is booked per batch', () => {
    expect(sessionIncrement({ ...spec, batchId: undefined }, NOON)).not.toHaveProperty('batchId');
    expect(sessionIncrement({ ...spec, batchId: 'b_x|y' }, NOON)).not.toHaveProperty('batchId');
  });
});

describe('rows', () => {
  const key = { provider: 'deepgram', model: 'nova-3', mode: 'batch', account: 'proj-a' };
  const local = { provider: 'local', model: 'pocketsphinx-en-us', mode: 'batch', account: 'default' };
  const c = (o: Partial<ReturnType<typeof zeroCounts>>) => ({ ...zeroCounts(), ...o });
  const records: UsageRecord[] = [
    { day: '2026-12-07', key, counts: c({ audioSeconds: 60, sessions: 2, attempts: 2, completed: 1, failed: 1 }) },
    { day: '2026-12-08', key, counts: c({ audioSeconds: 30, sessions: 1, attempts: 1, completed: 1 }) },
    { day: '2026-12-07', key: local, counts: c({ audioSeconds: 10, sessions: 1, attempts: 1, completed: 1 }) },
    { day: '2026-12-07', batchId: BATCH, key, counts: c({ audioSeconds: 60, sessions: 2, attempts: 2, completed: 1, failed: 1 }) },
    { day: '2026-12-08', batchId: BATCH, key, counts: c({ audioSeconds: 20, sessions: 1, attempts: 1, completed: 1 }) },
    { day: '2026-12-08', batchId: OTHER, key, counts: c({ audioSeconds: 10, sessions: 1, attempts: 1 }) },
  ];
  const own: PriceEntry = { provider: 'deepgram', model: 'nova-3', mode: 'batch', usdPerMinute: 0.01, source: 'contract', asOf: '2026-12-01' };

  it('by day: a row per day and key, priced from the table (overrides first), sorted, with totals', () => {
    const { rows, totals } = usageRows(records, 'day', {}, [own]);
    expect(rows.map((r) => ['day' in r ? r.day : '', r.provider, r.audioSeconds, r.estimatedCostUsd])).toEqual([
      ['2026-12-07', 'deepgram', 60, 0.01],
      ['2026-12-07', 'local', 10, 0],
      ['2026-12-08', 'deepgram', 30, 0.005],
    ]);
    expect(totals).toEqual({ audioSeconds: 100, sessions: 4, attempts: 4, completed: 3, failed: 1, cancelled: 0, estimatedCostUsd: 0.015, unpriced: 0 });
    // Without the operator's table, the shipped default.
    const dflt = priceFor({ provider: 'deepgram', model: 'nova-3', mode: 'batch' }, [], DEFAULT_PRICES)!.usdPerMinute;
    expect(usageRows(records, 'day', {}).rows[0]!.estimatedCostUsd).toBeCloseTo(dflt, 9);
  });

  it('by batch: a batch\'s days summed, jobs without a batch left out', () => {
    const { rows, totals } = usageRows(records, 'batch', {}, [own]);
    expect(rows.map((r) => ['batchId' in r ? r.batchId : '', r.audioSeconds, r.sessions, r.completed, r.failed])).toEqual([
      [BATCH, 80, 3, 2, 1],
      [OTHER, 10, 1, 0, 0],
    ]);
    expect(totals.estimatedCostUsd).toBeCloseTo(0.015, 9);
  });

  it('filters by account, provider and model; a key without a price is counted as unpriced', () => {
    expect(usageRows(records, 'day', { provider: 'local' }).rows).toHaveLength(1);
    expect(usageRows(records, 'day', { account: 'proj-a', model: 'nova-3' }).rows).toHaveLength(2);
    expect(usageRows(records, 'day', { account: 'nobody' }).rows).toEqual([]);
    const odd: UsageRecord = { day: '2026-12-07', key: { ...key, provider: 'gone' }, counts: c({ audioSeconds: 5 }) };
    const { rows, totals } = usageRows([odd], 'day', {});
    expect(rows[0]).toMatchObject({ estimatedCostUsd: null, usdPerMinute: null });
    expect(totals).toMatchObject({ unpriced: 1, estimatedCostUsd: 0, audioSeconds: 5 });
  });
});

describe('the usage query', () => {
  const today = '2026-12-07';
  it('defaults to the last 30 days by day', () => {
    const v = validateUsageQuery({}, today);
    expect({ from: v.from, to: v.to, by: v.by, n: v.days.length, filter: v.filter }).toEqual({ from: '2026-11-08', to: today, by: 'day', n: 30, filter: {} });
  });
  it('takes a range of at most MAX_USAGE_DAYS and refuses the rest', () => {
    expect(validateUsageQuery({ from: '2025-12-07', to: '2026-12-07' }, today).days).toHaveLength(MAX_USAGE_DAYS);
    expect(() => validateUsageQuery({ from: '2025-12-06', to: '2026-12-07' }, today)).toThrow(/367 days; at most 366/);
    expect(() => validateUsageQuery({ from: '2026-12-08', to: '2026-12-07' }, today)).toThrow(/after/);
    expect(() => validateUsageQuery({ from: '2026-02-30' }, today)).toThrow(/YYYY-MM-DD/);
    expect(() => validateUsageQuery({ by: 'week' }, today)).toThrow(/day or batch/);
    const codeOf = (q: Parameters<typeof validateUsageQuery>[0]) => {
      try {
        validateUsageQuery(q, today);
        return 'accepted';
      } catch (e) {
        return (e as { code?: string }).code;
      }
    };
    expect(codeOf({ provider: 'nope' })).toBe('UNKNOWN_PROVIDER');
    expect(codeOf({ account: 'a b' })).toBe('INVALID_REQUEST');
    expect(codeOf({ to: '2026-12-32' })).toBe('INVALID_REQUEST');
    expect(() => validateUsageQuery({ model: 'm'.repeat(201) }, today)).toThrow(/200/);
    expect(validateUsageQuery({ provider: 'deepgram', account: 'proj-a', model: 'nova-3', by: 'batch' }, today)).toMatchObject({ by: 'batch', filter: { provider: 'deepgram', account: 'proj-a', model: 'nova-3' } });
  });
  it('readUsage reads the days of the range, on the clock\'s today', async () => {
    const asked: Array<[readonly string[], string]> = [];
    const store: UsageStore = { add: async () => undefined, read: async (days, by) => (asked.push([days, by]), []) };
    const r = await readUsage({ usage: store, prices: [], clock: { now: () => NOON } }, { from: '2026-12-05', by: 'batch' });
    expect(asked).toEqual([[['2026-12-05', '2026-12-06', '2026-12-07'], 'batch']]);
    expect(r).toEqual({ from: '2026-12-05', to: '2026-12-07', by: 'batch', filter: {}, rows: [], totals: { ...zeroCounts(), estimatedCostUsd: 0, unpriced: 0 } });
  });
});

describe('storage encoding and the provider tag', () => {
  it('a field keeps any model name and batch id apart from the separators', () => {
    const key = { provider: 'openai', model: 'weird|model%20 name', mode: 'batch', account: 'a.b-c_d' };
    expect(parseUsageField(usageField('audioSeconds', key), false)).toEqual({ metric: 'audioSeconds', key });
    expect(parseUsageField(usageField('sessions', key, BATCH), true)).toEqual({ metric: 'sessions', batchId: BATCH, key });
    expect(parseUsageField('bogus|a|b|c|d', false)).toBeNull();
    expect(parseUsageField(usageField('sessions', key), true)).toBeNull();
  });
  it('Deepgram: tag=<batchId> beside the options\' own tags, once', () => {
    expect(listenQuery({ model: 'nova-3' }, {}, BATCH).getAll('tag')).toEqual([BATCH]);
    expect(listenQuery({ model: 'nova-3' }, { tag: ['x', 'y'] }, BATCH).getAll('tag')).toEqual(['x', 'y', BATCH]);
    expect(listenQuery({ model: 'nova-3' }, { tag: BATCH }, BATCH).getAll('tag')).toEqual([BATCH]);
    expect(listenQuery({ model: 'nova-3' }, {}).has('tag')).toBe(false);
  });
});

describe('a batch summary\'s spend', () => {
  it('audio hours and the cost at the table\'s price for its provider/model/mode (the default model when unnamed)', () => {
    const own: PriceEntry = { provider: 'deepgram', model: 'nova-3', mode: 'stream', usdPerMinute: 0.006, source: 'contract', asOf: '2026-12-01' };
    expect(batchSpend({ provider: 'deepgram', mode: 'stream', audioSecondsDone: 5400 }, [own])).toEqual({ audioHours: 1.5, estimatedCostUsd: 0.54, price: { usdPerMinute: 0.006, source: 'contract', asOf: '2026-12-01' } });
    expect(batchSpend({ provider: 'deepgram', model: 'nova-3', mode: 'batch', audioSecondsDone: 600 }).estimatedCostUsd).toBeCloseTo(10 * 0.0043, 9);
    expect(batchSpend({ provider: 'nope', mode: 'batch', audioSecondsDone: 60 })).toEqual({ audioHours: expect.closeTo(1 / 60, 6), estimatedCostUsd: null, price: null });
  });
});
