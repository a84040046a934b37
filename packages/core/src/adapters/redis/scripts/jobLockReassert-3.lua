-- Re-assert a running job's BullMQ lock after Redis came back (JobLocks, apps/worker/src/job-locks.ts):
-- renew it if it is still ours, or re-take it if it expired while the job is still in `active`.
-- KEYS[1] lock, KEYS[2] stalled set, KEYS[3] active list. ARGV: token, lockDuration, jobId.
-- Returns 1 renewed, 2 re-taken after expiry, 0 lost (another worker holds it, or it is no longer active).
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('SREM', KEYS[2], ARGV[3])
  return 1
end
if cur then return 0 end
if not redis.call('LPOS', KEYS[3], ARGV[3]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SREM', KEYS[2], ARGV[3])
return 2
