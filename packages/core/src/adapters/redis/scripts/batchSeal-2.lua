-- No more jobs will be added to the batch: mark it sealed, and say whether it has finished already.
-- KEYS[1] = state-set key prefix, KEYS[2] = the record.
-- Returns 1 if every job is terminal (the caller must then finalise the batch), else 0.
redis.call('HSET', KEYS[2], 'sealed', '1')
--- @include "batchFinished"
