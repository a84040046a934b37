-- Take leases of a cap bucket for up to N waiters at once, as far as it has room (expired leases are
-- dropped first). One call re-fills every slot a burst of releases freed, instead of one round trip each.
-- KEYS[1] leases zset, KEYS[2] state hash. ARGV: ttlMs, configuredCap, leaseId1 [, leaseId2 …].
-- The first `granted` ids (in ARGV order) got a lease.
-- Returns {granted, inFlight, effectiveCap, msUntilEarliestExpiry} (the last is 1000 if none is held).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ttl = tonumber(ARGV[1])
local configured = tonumber(ARGV[2])
local eff = tonumber(redis.call('HGET', KEYS[2], 'eff') or configured)
if eff > configured then eff = configured; redis.call('HSET', KEYS[2], 'eff', eff) end
local n = redis.call('ZCARD', KEYS[1])
local granted = 0
for i = 3, #ARGV do
  if n >= eff then break end
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
  n = n + 1
  granted = granted + 1
end
if granted > 0 then redis.call('PEXPIRE', KEYS[1], ttl * 2) end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = 1000
if first[2] then wait = tonumber(first[2]) - now end
return {granted, n, eff, wait}
