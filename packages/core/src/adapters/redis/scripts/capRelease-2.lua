-- Give a lease back.
-- KEYS[1] leases, KEYS[2] state. ARGV: leaseId, configuredCap, increaseIntervalMs, channel.
-- Removes the lease, applies the additive increase, wakes waiters. Returns the effective cap.
redis.call('ZREM', KEYS[1], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local configured = tonumber(ARGV[2])
local eff = tonumber(redis.call('HGET', KEYS[2], 'eff') or configured)
local changed = tonumber(redis.call('HGET', KEYS[2], 'changedAt') or '0')
if eff < configured and now - changed >= tonumber(ARGV[3]) then
  eff = eff + 1
  redis.call('HSET', KEYS[2], 'eff', eff, 'changedAt', now)
end
redis.call('PUBLISH', ARGV[4], '1')
return eff
