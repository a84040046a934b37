-- Move a job of a batch to a new state: remove it from every state set, add it to the new one.
-- KEYS[1] = state-set key prefix, KEYS[2] = the record, KEYS[3..#KEYS-2] = the state sets,
-- KEYS[#KEYS-1] = results hash, KEYS[#KEYS] = the batch index (unused here; listed for Cluster).
-- Ten keys: one state set per BATCH_JOB_STATES (BatchStore checks the count).
-- ARGV: jobId, state, default score, result JSON, audio seconds, bytes, rule.
-- Rules: 'end' — a terminal state; the first terminal outcome wins (a job already terminal is left
-- as it is, and its audio seconds are counted once); 'start' — 'active', unless already terminal;
-- 'force' — any move (redrive back to 'queued', cancel of a vanished job).
-- Returns {applied, finished, current state ('' if not in the books), stored result JSON}.
local id = ARGV[1]
local state = ARGV[2]
local rule = ARGV[7]
local terminal = {completed = true, failed = true, cancelled = true, skipped = true}
local score = nil
local current = nil
for i = 3, #KEYS - 2 do
  local s = redis.call('ZSCORE', KEYS[i], id)
  if s then score = s; current = string.sub(KEYS[i], #KEYS[1] + 1) end
end
-- A job that is not (or no longer) in the books is left out: every job is booked before it can run,
-- so it is a job whose finished entry went to an S3 part of the report (batchSpill).
if rule ~= 'force' and not current then return {0, 0, '', ''} end
if rule ~= 'force' and current and terminal[current] then
  return {0, 0, current, redis.call('HGET', KEYS[#KEYS - 1], id) or ''}
end
for i = 3, #KEYS - 2 do redis.call('ZREM', KEYS[i], id) end
if not score then score = ARGV[3] end
redis.call('ZADD', KEYS[1] .. state, score, id)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[#KEYS - 1], id, ARGV[4]) end
if ARGV[5] ~= '0' then
  redis.call('HINCRBYFLOAT', KEYS[2], 'audioSecondsDone', ARGV[5])
end
if ARGV[6] ~= '0' then
  redis.call('HINCRBY', KEYS[2], 'bytesDone', ARGV[6])
end
local function finished()
  --- @include "batchFinished"
end
return {1, finished(), state, ARGV[4]}
