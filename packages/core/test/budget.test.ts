/** Budgets, the pure part (domain/budget.ts) and the attempt decision for a job a budget refused. */
import { accountBudgetFor, admits, budgetDay, costOf, estimateFromSize, limitsOf, msToNextDay, parseAccountBudgets, EMPTY_BOOK } from '../src/domain/budget';
import { decideFailedAttempt } from '../src/domain/attempt';
import { BudgetPausedError, ProviderUnavailableError } from '../src/domain/errors';
import { DEFAULT_PRICES } from '../src/domain/prices';

describe('admits', () => {
  it('admits while spent + reserved + the job fit, on each limit', () => {
    const book = { ...EMPTY_BOOK, spentSeconds: 3000, reservedSeconds: 500, spentCostUsd: 1, reservedCostUsd: 0.5 };
    expect(admits({ maxAudioSeconds: 3600 }, book, { seconds: 100, costUsd: 0 })).toBe(true);
    expect(admits({ maxAudioSeconds: 3600 }, book, { seconds: 101, costUsd: 0 })).toBe(false);
    expect(admits({ maxCostUsd: 2 }, book, { seconds: 1e6, costUsd: 0.5 })).toBe(true);
    expect(admits({ maxCostUsd: 2 }, book, { seconds: 0, costUsd: 0.51 })).toBe(false);
    expect(admits({}, book, { seconds: 1e9, costUsd: 1e9 })).toBe(true);
  });

  it('limits from hours and dollars', () => {
    expect(limitsOf({ maxAudioHours: 1.5, maxCost: 20 })).toEqual({ maxAudioSeconds: 5400, maxCostUsd: 20 });
    expect(limitsOf({})).toEqual({});
  });
});

describe('costOf', () => {
  it('prices an hour of Nova-3 batch from the table, per channel where billed so', () => {
    const nova = DEFAULT_PRICES.find((p) => p.provider === 'deepgram' && p.model === 'nova-3*' && p.mode === 'batch')!;
    expect(costOf([], { provider: 'deepgram', model: 'nova-3', mode: 'batch' }, 3600)).toBeCloseTo(60 * nova.usdPerMinute, 9);
    expect(costOf([], { provider: 'deepgram', model: 'nova-3', mode: 'batch', channels: 2 }, 3600)).toBeCloseTo(120 * nova.usdPerMinute, 9);
    expect(costOf([{ provider: 'openai', model: '*', mode: 'batch', usdPerMinute: 1, source: 'test', asOf: '2026-12-07' }], { provider: 'openai', model: 'whisper-1', mode: 'batch', channels: 2 }, 120)).toBeCloseTo(2, 9);
    expect(costOf([], { provider: 'local', model: 'pocketsphinx', mode: 'batch' }, 3600)).toBe(0);
  });

  it('estimates a file without a stated duration from its size at 128 kbit/s', () => {
    expect(estimateFromSize(16_000 * 60)).toBe(60);
  });
});

describe('SCRIBE_BUDGETS', () => {
  it('parses hours and dollars per provider account, the named account before *', () => {
    const b = parseAccountBudgets('deepgram:projA=100h/$40, deepgram:*=$5,openai:default=2.5h');
    expect(b).toEqual([
      { provider: 'deepgram', account: 'projA', maxAudioSeconds: 360_000, maxCostUsd: 40 },
      { provider: 'deepgram', account: '*', maxCostUsd: 5 },
      { provider: 'openai', account: 'default', maxAudioSeconds: 9000 },
    ]);
    expect(accountBudgetFor(b, 'deepgram', 'projA')?.maxCostUsd).toBe(40);
    expect(accountBudgetFor(b, 'deepgram', 'projB')?.maxCostUsd).toBe(5);
    expect(accountBudgetFor(b, 'assemblyai', 'default')).toBeUndefined();
    expect(parseAccountBudgets('')).toEqual([]);
  });

  it.each(['deepgram:projA', 'nope:projA=1h', 'deepgram:projA=1h/2h', 'deepgram:projA=10', 'deepgram:projA=1h,deepgram:projA=$2'])('refuses %s', (text) => {
    expect(() => parseAccountBudgets(text)).toThrow();
  });

  it('counts by UTC day', () => {
    const t = Date.parse('2026-12-07T23:59:30Z');
    expect(budgetDay(t)).toBe('2026-12-07');
    expect(msToNextDay(t)).toBe(30_000);
  });
});

describe('a job a budget refused', () => {
  const base = { spent: 0, attempts: 3, progress: {}, canReschedule: true, now: 0, storageRetryMs: 1000, maxRateLimitDelays: 2 };
  it('goes back to the queue without spending an attempt, for as long as the refusal says, even on its last attempt', () => {
    expect(decideFailedAttempt({ ...base, spent: 2, error: new BudgetPausedError('paused', { retryAfterMs: 300_000 }) })).toEqual({ outcome: 'rescheduled', reason: 'BUDGET_PAUSED', code: 'BUDGET_PAUSED', delayMs: 300_000, progress: {} });
  });
  it('unlike a transient failure, which spends one', () => {
    expect(decideFailedAttempt({ ...base, error: new ProviderUnavailableError('503') })).toEqual({ outcome: 'retrying', code: 'PROVIDER_UNAVAILABLE' });
  });
});
