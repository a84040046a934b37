-- A provider answered 429: cut the bucket's effective cap.
-- KEYS[1] leases, KEYS[2] state. ARGV: configuredCap, factor. Multiplicative decrease, at most every
-- 500 ms (the 429s of one burst arrive together and must not cut the cap to nothing).
-- Returns {1, new effective cap} or {0, effective cap} when it was decreased too recently.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local configured = tonumber(ARGV[1])
local eff = tonumber(redis.call('HGET', KEYS[2], 'eff') or configured)
local dec = tonumber(redis.call('HGET', KEYS[2], 'decreasedAt') or '0')
if now - dec < 500 then return {0, eff} end
local n = redis.call('ZCARD', KEYS[1])
local base = math.min(eff, math.max(n, 1))
local nextEff = math.max(1, math.floor(base * tonumber(ARGV[2])))
redis.call('HSET', KEYS[2], 'eff', nextEff, 'changedAt', now, 'decreasedAt', now)
return {1, nextEff}
