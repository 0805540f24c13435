--[[
  A shard's changes after a seq, with the bytes and meta of adds still live.

    Input:
      KEYS[1] change log of the shard
      KEYS[2] pruned seq of the shard
      KEYS[3] vectors hash of the partition
      KEYS[4] removed hash of the partition
      KEYS[5] templates hash of the partition

      ARGV[1] afterSeq
      ARGV[2] the most changes to return (the first ones); negative for all

    Output:
      {entry, bytes|false, meta|false, ...}, or an error reply PRUNED.
]]
--- @include "includes/refuseIfPruned"
local refused = refuse_if_pruned(KEYS[2], ARGV[1])
if refused then return refused end
local entries = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'LIMIT', 0, ARGV[2])
local out = {}
for _, entry in ipairs(entries) do
  local _, _, kind, faiss_id = string.find(entry, '^%d+|(%a)|(%d+)|')
  table.insert(out, entry)
  if kind == 'a' and redis.call('HEXISTS', KEYS[4], faiss_id) == 0 then
    table.insert(out, redis.call('HGET', KEYS[3], faiss_id) or false)
    table.insert(out, redis.call('HGET', KEYS[5], faiss_id) or false)
  else
    table.insert(out, false)
    table.insert(out, false)
  end
end
return out
