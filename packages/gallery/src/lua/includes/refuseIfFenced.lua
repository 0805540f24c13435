--[[
  Refuses a write whose fencing token is older than the shard's fence. Called before any write,
  so a refused script has changed nothing (Redis does not roll scripts back). An empty token is
  an unfenced write (tools, single-writer tests).
]]
local function refuse_if_fenced(fence_key, token)
  if token == '' then return nil end
  local fence = tonumber(redis.call('GET', fence_key) or '0')
  if tonumber(token) < fence then
    return redis.error_reply('FENCED fencing token ' .. token .. ' is older than the shard fence ' .. fence)
  end
  return nil
end
