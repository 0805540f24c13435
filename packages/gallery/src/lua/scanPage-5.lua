--[[
  One scan page as of asOfSeq: rows with afterId < id <= maxId that were live at asOfSeq. An id
  is reserved before its add commits, so a row under maxId may have been added after asOfSeq:
  its add seq (meta q; absent in rows older than encryption, all committed long before) says
  so, and the change log, not the scan, delivers it.

    Input:
      KEYS[1] rows sorted set of the shard and model
      KEYS[2] vectors hash of the partition
      KEYS[3] removed hash of the partition
      KEYS[4] pruned seq of the shard
      KEYS[5] templates hash of the partition

      ARGV[1] afterId
      ARGV[2] maxId
      ARGV[3] limit (ids examined)
      ARGV[4] asOfSeq

    Output:
      {lastExaminedId, {id, bytes, meta, ...}}, or an error reply PRUNED.
]]
--- @include "includes/refuseIfPruned"
local refused = refuse_if_pruned(KEYS[4], ARGV[4])
if refused then return refused end
local as_of = tonumber(ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3])
local out = {}
local last = ARGV[1]
for _, id in ipairs(ids) do
  last = id
  local removed_at = redis.call('HGET', KEYS[3], id)
  if (not removed_at) or tonumber(removed_at) > as_of then
    local meta = redis.call('HGET', KEYS[5], id)
    local added_at = meta and cjson.decode(meta).q or 0
    if added_at <= as_of then
      table.insert(out, id)
      table.insert(out, redis.call('HGET', KEYS[2], id))
      table.insert(out, meta)
    end
  end
end
return {last, out}
