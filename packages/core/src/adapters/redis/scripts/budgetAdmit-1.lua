-- Admit a job under one budget book, or refuse it: the atomic form of domain/budget.ts `admits`.
-- KEYS[1] = the book (hash: lim:s, lim:c limits when stored; s, c spent; rs, rc reserved; r:<jobId> = "<s> <c>").
-- ARGV: job id, expected seconds, expected cost, limit seconds, limit cost, ttl seconds (0 = keep),
--       '1' if the limits are the two given ('' = none) or '0' for the book's own (lim:s, lim:c).
-- Returns {1 admitted | 0 refused, spent s, reserved s, spent c, reserved c} (as strings).
local book = KEYS[1]
local field = 'r:' .. ARGV[1]
local function num(f) return tonumber(redis.call('HGET', book, f) or '0') or 0 end
local s, c, rs, rc = num('s'), num('c'), num('rs'), num('rc')
local function figures(ok) return {ok, tostring(s), tostring(rs), tostring(c), tostring(rc)} end
-- A job admitted before (a retry, a hand-back, a crash between steps) keeps its reservation.
if redis.call('HEXISTS', book, field) == 1 then return figures(1) end
local limS, limC
if ARGV[7] == '1' then
  limS, limC = tonumber(ARGV[4]), tonumber(ARGV[5])
else
  limS, limC = tonumber(redis.call('HGET', book, 'lim:s') or ''), tonumber(redis.call('HGET', book, 'lim:c') or '')
end
-- A book without limits (a batch without a budget) admits without keeping anything.
if ARGV[7] ~= '1' and not limS and not limC then return figures(1) end
local es, ec = tonumber(ARGV[2]), tonumber(ARGV[3])
if limS and s + rs + es > limS + 1e-9 then return figures(0) end
if limC and c + rc + ec > limC + 1e-9 then return figures(0) end
redis.call('HSET', book, field, ARGV[2] .. ' ' .. ARGV[3])
rs = redis.call('HINCRBYFLOAT', book, 'rs', ARGV[2])
rc = redis.call('HINCRBYFLOAT', book, 'rc', ARGV[3])
if tonumber(ARGV[6]) > 0 then redis.call('EXPIRE', book, ARGV[6]) end
return figures(1)
