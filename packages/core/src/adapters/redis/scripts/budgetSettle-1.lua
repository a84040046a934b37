-- A job admitted under a budget book ended: its reservation becomes what it used (0 for a job
-- that failed or was cancelled). Only a job holding a reservation counts, so a repeated report
-- of the same end adds nothing.
-- KEYS[1] = the book. ARGV: job id, used seconds, used cost.
-- Returns 1 if the reservation was settled, 0 if the job held none.
local book = KEYS[1]
local field = 'r:' .. ARGV[1]
local r = redis.call('HGET', book, field)
if not r then return 0 end
local rs, rc = string.match(r, '^(%S+) (%S+)$')
redis.call('HINCRBYFLOAT', book, 'rs', -tonumber(rs))
redis.call('HINCRBYFLOAT', book, 'rc', -tonumber(rc))
redis.call('HINCRBYFLOAT', book, 's', ARGV[2])
redis.call('HINCRBYFLOAT', book, 'c', ARGV[3])
redis.call('HDEL', book, field)
return 1
