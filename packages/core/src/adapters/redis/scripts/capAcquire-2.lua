-- Take a lease of a cap bucket if it has room (expired leases are dropped first).
-- KEYS[1] leases zset, KEYS[2] state hash. ARGV: leaseId, ttlMs, configuredCap.
-- Returns {1, inFlight, effectiveCap} or {0, inFlight, effectiveCap, msUntilEarliestExpiry}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local configured = tonumber(ARGV[3])
local eff = tonumber(redis.call('HGET', KEYS[2], 'eff') or configured)
if eff > configured then eff = configured; redis.call('HSET', KEYS[2], 'eff', eff) end
local n = redis.call('ZCARD', KEYS[1])
if n < eff then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return {1, n + 1, eff}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = 1000
if first[2] then wait = tonumber(first[2]) - now end
return {0, n, eff, wait}
