-- The batch's feed ends: its listing is exhausted (ARGV[1] = the cursor the caller saw last, which
-- must still be the cursor) or it was cancelled (ARGV[1] = '*': its pages' redo marks go too, the
-- cancel ends their jobs). The request stays in the record while pages may still need their redo.
-- KEYS[1] = the batch record. Returns 1 if this call ended the feed.
if redis.call('HEXISTS', KEYS[1], 'feedAfter') == 0 then return 0 end
if ARGV[1] ~= '*' and redis.call('HGET', KEYS[1], 'feedAfter') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'feedAfter')
if ARGV[1] == '*' then
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(field, 1, 5) == 'redo:' then redis.call('HDEL', KEYS[1], field) end
  end
end
return 1
