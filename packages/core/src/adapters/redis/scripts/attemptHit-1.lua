-- Count one attempt in a subject's fixed window (the login rate limit).
-- KEYS[1] = the subject's counter. ARGV: the window (ms).
-- The window starts at the first attempt (the counter is created with the window as its TTL).
-- Returns {attempts in the window, this one included; ms until the window ends}.
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
