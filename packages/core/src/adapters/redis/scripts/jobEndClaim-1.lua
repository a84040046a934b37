-- Record the end of a job's current life, unless one is recorded already (the first one wins).
-- KEYS[1] = the job's hash. ARGV: job creation ts, outcome JSON, ttl seconds (0 = none).
-- Returns {1 if this call recorded the outcome, the recorded outcome JSON, gen}.
local ts = redis.call('HGET', KEYS[1], 'ts')
if ts ~= ARGV[1] then
  redis.call('HDEL', KEYS[1], 'outcome')
  redis.call('HSET', KEYS[1], 'ts', ARGV[1])
end
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
local o = redis.call('HGET', KEYS[1], 'outcome')
if o then return {0, o, gen} end
redis.call('HSET', KEYS[1], 'outcome', ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return {1, ARGV[2], gen}
