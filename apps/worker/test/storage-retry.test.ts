import { StorageUnavailableError, SourceNotFoundError, VirtualClock } from '@scribe-fleet/core';
import { withStorageRetry } from '@scribe-fleet/core/app/process-attempt';

/** A storage call that fails with STORAGE_UNAVAILABLE until the virtual time `upAt`. */
function outageUntil(clock: VirtualClock, upAt: number) {
  const calls: number[] = [];
  return {
    calls,
    fn: async () => {
      calls.push(clock.now());
      if (clock.now() < upAt) throw new StorageUnavailableError('connect ECONNREFUSED');
      return 'ok';
    },
  };
}

it('waits out a 60 s storage outage inside the budget, with capped exponential backoff', async () => {
  const clock = new VirtualClock(0);
  const s3 = outageUntil(clock, 60_000);
  await expect(withStorageRetry(clock, 180_000, undefined, s3.fn, () => 0.5)).resolves.toBe('ok');
  const gaps = s3.calls.slice(1).map((t, i) => t - s3.calls[i]!);
  expect(gaps.slice(0, 5)).toEqual([500, 1000, 2000, 4000, 8000]);
  expect(Math.max(...gaps)).toBe(10_000); // capped
  expect(s3.calls.at(-1)).toBeGreaterThanOrEqual(60_000);
  expect(s3.calls.at(-1)! - 60_000).toBeLessThanOrEqual(10_000);
});

it('gives up once the budget would be passed, with the storage error', async () => {
  const clock = new VirtualClock(0);
  const s3 = outageUntil(clock, 10 * 60_000);
  await expect(withStorageRetry(clock, 120_000, undefined, s3.fn, () => 0.5)).rejects.toBeInstanceOf(StorageUnavailableError);
  expect(clock.now()).toBeLessThanOrEqual(120_000);
  expect(clock.now()).toBeGreaterThan(100_000);
});

it('does not retry other errors, nor after the attempt is aborted', async () => {
  const clock = new VirtualClock(0);
  let n = 0;
  await expect(
    withStorageRetry(clock, 180_000, undefined, async () => {
      n += 1;
      throw new SourceNotFoundError('gone');
    }),
  ).rejects.toBeInstanceOf(SourceNotFoundError);
  expect(n).toBe(1);
  const ctrl = new AbortController();
  ctrl.abort(new Error('cancelled'));
  const s3 = outageUntil(clock, Infinity);
  await expect(withStorageRetry(clock, 180_000, ctrl.signal, s3.fn)).rejects.toBeInstanceOf(StorageUnavailableError);
  expect(s3.calls).toHaveLength(1);
});
