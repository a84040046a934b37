import { batchOutcome } from '../src/api/dashboard/fleet-view';
import { bucketDisplayName } from '../src/api/dashboard';

const counts = (over: Partial<Record<'queued' | 'active' | 'completed' | 'failed' | 'cancelled' | 'skipped', number>>) => ({ queued: 0, active: 0, completed: 0, failed: 0, cancelled: 0, skipped: 0, ...over });

it('a finished batch with failures is not shown as plainly finished', () => {
  expect(batchOutcome({ status: 'finished', counts: counts({ completed: 3 }) })).toBe('finished');
  expect(batchOutcome({ status: 'finished', counts: counts({ completed: 3, failed: 1 }) })).toBe('finished with failures');
  expect(batchOutcome({ status: 'finished', counts: counts({ skipped: 2, failed: 1 }) })).toBe('finished with failures');
  expect(batchOutcome({ status: 'finished', counts: counts({ failed: 4 }) })).toBe('failed');
  expect(batchOutcome({ status: 'running', paused: 'budget', counts: counts({ completed: 2, queued: 3 }) })).toBe('paused: budget');
  expect(batchOutcome({ status: 'running', counts: counts({ failed: 4, queued: 1 }) })).toBe('running');
  expect(batchOutcome({ status: 'cancelled', counts: counts({ failed: 1, cancelled: 3 }) })).toBe('cancelled');
});

it('bucket queues on the board are named mode first, so the batch and stream queues of one bucket differ at once', () => {
  const b = { provider: 'deepgram' as const, account: 'acct', modelClass: 'nova', mode: 'stream' as const };
  expect(bucketDisplayName(b)).toBe('stream · deepgram nova · acct');
  expect(bucketDisplayName({ ...b, mode: 'batch' }).slice(0, 5)).not.toBe(bucketDisplayName(b).slice(0, 5));
});
