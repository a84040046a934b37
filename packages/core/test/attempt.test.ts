/** The one decision on how a failed attempt ends (domain/attempt.ts): pure, no Redis. */
import { decideFailedAttempt, DecodeError, ProviderRateLimitedError, ProviderUnavailableError, StorageUnavailableError, type FailedAttempt } from '../src';

const base = (over: Partial<FailedAttempt>): FailedAttempt => ({
  error: new ProviderUnavailableError('503'),
  spent: 0,
  attempts: 5,
  progress: {},
  canReschedule: true,
  now: 1_000_000,
  storageRetryMs: 180_000,
  maxRateLimitDelays: 200,
  random: () => 0.5,
  ...over,
});

it('a transient error retries while attempts remain and fails on the last one (stalls counted as spent)', () => {
  expect(decideFailedAttempt(base({ spent: 3 }))).toEqual({ outcome: 'retrying', code: 'PROVIDER_UNAVAILABLE' });
  expect(decideFailedAttempt(base({ spent: 4 }))).toEqual({ outcome: 'failed', code: 'PROVIDER_UNAVAILABLE' });
});

it('an unrecoverable error fails at once', () => {
  expect(decideFailedAttempt(base({ error: new DecodeError('not audio') }))).toEqual({ outcome: 'failed', code: 'DECODE_FAILED' });
});

it('a rate limit is re-scheduled after Retry-After (jittered ±25 %) without spending an attempt, up to the limit', () => {
  const d = decideFailedAttempt(base({ error: new ProviderRateLimitedError('429', { retryAfterMs: 4000 }), progress: { rateLimitDelays: 2 }, spent: 4 }));
  expect(d).toEqual({ outcome: 'rescheduled', reason: 'RATE_LIMITED', code: 'PROVIDER_RATE_LIMITED', delayMs: 4000, progress: { rateLimitDelays: 3 } });
  // Out of re-schedules: an ordinary failure, on the last attempt final.
  expect(decideFailedAttempt(base({ error: new ProviderRateLimitedError('429'), progress: { rateLimitDelays: 200 }, spent: 4 }))).toEqual({ outcome: 'failed', code: 'PROVIDER_RATE_LIMITED' });
});

it('storage away is waited out for storageRetryMs from its first failure, with a growing delay capped at 15 s', () => {
  const first = decideFailedAttempt(base({ error: new StorageUnavailableError('ECONNREFUSED') }));
  expect(first).toEqual({ outcome: 'rescheduled', reason: 'STORAGE_UNAVAILABLE', code: 'STORAGE_UNAVAILABLE', delayMs: 1000, progress: { storageDownSince: 1_000_000 } });
  const later = decideFailedAttempt(base({ error: new StorageUnavailableError('x'), progress: { storageDownSince: 1_000_000 - 60_000 } }));
  expect(later).toMatchObject({ outcome: 'rescheduled', delayMs: 15_000, progress: { storageDownSince: 940_000 } });
  // Past the window: a transient failure that spends an attempt.
  expect(decideFailedAttempt(base({ error: new StorageUnavailableError('x'), progress: { storageDownSince: 1_000_000 - 180_000 } }))).toEqual({ outcome: 'retrying', code: 'STORAGE_UNAVAILABLE' });
});

it('a hand-back (shutdown) is re-scheduled at once whatever the error; without a lock token nothing is re-scheduled', () => {
  expect(decideFailedAttempt(base({ handBack: true, spent: 4 }))).toEqual({ outcome: 'rescheduled', reason: 'HANDED_BACK', delayMs: 0, progress: {} });
  expect(decideFailedAttempt(base({ handBack: true, canReschedule: false }))).toEqual({ outcome: 'retrying', code: 'PROVIDER_UNAVAILABLE' });
  expect(decideFailedAttempt(base({ error: new ProviderRateLimitedError('429'), canReschedule: false, spent: 4 }))).toEqual({ outcome: 'failed', code: 'PROVIDER_RATE_LIMITED' });
});
