-- Take one attempt back from a subject's window (a successful sign-in does not count).
-- KEYS[1] = the subject's counter. Only while the window lives and above zero: a DECR of a missing
-- key would create a counter without a TTL.
-- Returns the attempts left in the window.
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return redis.call('DECR', KEYS[1]) end
return 0
