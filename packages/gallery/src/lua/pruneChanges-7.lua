--[[
  Prunes a shard's change log through a seq, dropping the rows of removals it covers.

    Input:
      KEYS[1] change log of the shard
      KEYS[2] pruned seq of the shard
      KEYS[3] templates hash of the partition
      KEYS[4] vectors hash of the partition
      KEYS[5] removed hash of the partition
      KEYS[6] fence of the shard
      KEYS[7] partition deletions hash

      ARGV[1] throughSeq
      ARGV[2] fencing token ('' for an unfenced write)
      ARGV[3] rows key prefix of the shard (a removed row's rows key depends on its model,
              read from the log)
      ARGV[4] partition

    Output:
      the number of log entries pruned (0 for a partition being deleted: its keys are going, and
      a write here would bring one back), or an error reply FENCED.
]]
--- @include "includes/refuseIfFenced"
local refused = refuse_if_fenced(KEYS[6], ARGV[2])
if refused then return refused end
if redis.call('HEXISTS', KEYS[7], ARGV[4]) == 1 then return 0 end
local entries = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, entry in ipairs(entries) do
  local _, _, kind, faiss_id, model = string.find(entry, '^%d+|(%a)|(%d+)|(.*)$')
  if kind == 'r' then
    redis.call('ZREM', ARGV[3] .. model, faiss_id)
    redis.call('HDEL', KEYS[3], faiss_id)
    redis.call('HDEL', KEYS[4], faiss_id)
    redis.call('HDEL', KEYS[5], faiss_id)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], ARGV[1]) end
return #entries
