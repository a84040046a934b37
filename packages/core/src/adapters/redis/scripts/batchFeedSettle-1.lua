-- The jobs of the page fed after cursor ARGV[1] are in the queue: drop its redo mark.
-- KEYS[1] = the batch record. Returns 1 if the mark was there.
return redis.call('HDEL', KEYS[1], 'redo:' .. ARGV[1])
