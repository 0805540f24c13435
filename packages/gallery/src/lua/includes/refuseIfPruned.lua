--[[
  Refuses a read from before the prune point: this is what keeps a stale local snapshot (or a
  scan racing a prune) from silently missing changes; the Shard then rebuilds from the store.
]]
local function refuse_if_pruned(pruned_key, after_seq)
  local pruned = tonumber(redis.call('GET', pruned_key) or '0')
  if tonumber(after_seq) < pruned then
    return redis.error_reply('PRUNED the change log of this shard is pruned through seq ' .. pruned)
  end
  return nil
end
