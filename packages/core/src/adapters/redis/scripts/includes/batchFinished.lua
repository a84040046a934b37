-- Finished? Sealed, every job in a terminal state, and nobody has claimed the finalisation yet
-- (this call claims it). Jobs spilled to S3 parts (batchSpill) count by the record's `spilled:<state>`.
-- KEYS[1] = state-set key prefix, KEYS[2] = the record. Returns 1 or 0.
local total = tonumber(redis.call('HGET', KEYS[2], 'total') or '0')
local sealed = redis.call('HGET', KEYS[2], 'sealed')
local done = 0
for _, t in ipairs({'completed', 'failed', 'cancelled', 'skipped'}) do
  done = done + redis.call('ZCARD', KEYS[1] .. t) + tonumber(redis.call('HGET', KEYS[2], 'spilled:' .. t) or '0')
end
if sealed == '1' and done >= total and redis.call('HSETNX', KEYS[2], 'finalising', '1') == 1 then return 1 end
return 0
