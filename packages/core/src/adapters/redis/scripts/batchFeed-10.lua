-- Add one listed page of a drip-fed batch to its books and move its cursor, if the cursor is still
-- where the caller read it (compare-and-set: two feeders of one batch never add a page twice).
-- KEYS: as batchMove's (state-set prefix, the record, the six state sets, results, index).
-- ARGV[1] = the cursor the page was listed after, ARGV[2] = its last key (the new cursor),
-- ARGV[3] = entries, then four per entry: job id, state, bytes, result JSON ('' for none).
-- The page is kept as a field `redo:<its start>` = its last key until the caller has put its jobs in
-- the queue (batchFeedSettle), so a feeder that dies in between is repaired by the next one.
-- Returns the number of jobs added to the books, or -1 if the cursor had moved (nothing changed).
if redis.call('HGET', KEYS[2], 'feedAfter') ~= ARGV[1] then return -1 end
local n = tonumber(ARGV[3])
local pos = tonumber(redis.call('HGET', KEYS[2], 'positions') or '0')
local added = 0
local bytes = 0
for i = 0, n - 1 do
  local b = 4 + i * 4
  local id, state, size, result = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  if redis.call('ZADD', KEYS[1] .. state, 'NX', pos, id) == 1 then
    pos = pos + 1
    added = added + 1
    bytes = bytes + tonumber(size)
    if result ~= '' then redis.call('HSET', KEYS[#KEYS - 1], id, result) end
  end
end
redis.call('HSET', KEYS[2], 'positions', pos, 'feedAfter', ARGV[2], 'redo:' .. ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'total', added)
redis.call('HINCRBY', KEYS[2], 'bytesTotal', bytes)
return added
