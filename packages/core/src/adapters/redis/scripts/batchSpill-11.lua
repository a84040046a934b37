-- Take a part of a batch's finished jobs out of Redis once their results are in an S3 part of the
-- report: all of them, or none if any has moved since they were read (a second spiller, a redrive).
-- KEYS: as batchMove's (state-set prefix, the record, the six state sets, results, index), then
-- KEYS[11] = the list of the batch's committed parts.
-- ARGV[1] = the state (completed or skipped), ARGV[2] = the part's object key, ARGV[3..] = job ids.
-- The record's `spilled:<state>` counts them, so the counts and the finish check still see them.
-- Returns how many jobs left Redis (0: nothing changed, the part is garbage).
local set = KEYS[1] .. ARGV[1]
for i = 3, #ARGV do
  if not redis.call('ZSCORE', set, ARGV[i]) then return 0 end
end
for i = 3, #ARGV do
  redis.call('ZREM', set, ARGV[i])
  redis.call('HDEL', KEYS[9], ARGV[i])
end
redis.call('HINCRBY', KEYS[2], 'spilled:' .. ARGV[1], #ARGV - 2)
redis.call('RPUSH', KEYS[11], ARGV[2])
return #ARGV - 2
