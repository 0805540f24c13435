--[[
  Ends a partition's deletion once its keys are erased: removes the record, if it is still the
  one the caller erased for. The name may then be enrolled into afresh.

    Input:
      KEYS[1] partition deletions hash

      ARGV[1] partition
      ARGV[2] the deletion's record

    Output:
      1 when the record was removed, 0 when it was not (already finished).
]]
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
