-- Heartbeat of a held lease.
-- KEYS[1] leases, KEYS[2] state. ARGV: leaseId, ttlMs, configuredCap.
-- Returns 1 if renewed, 2 if the lease had expired (Redis was away longer than the TTL) and was
-- taken again because the bucket still had room, 0 if it is gone and the bucket is full.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
local r = 1
if not s or tonumber(s) <= now then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  local configured = tonumber(ARGV[3])
  local eff = tonumber(redis.call('HGET', KEYS[2], 'eff') or configured)
  if eff > configured then eff = configured end
  if redis.call('ZCARD', KEYS[1]) >= eff then return 0 end
  r = 2
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return r
