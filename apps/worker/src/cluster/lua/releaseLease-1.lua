--[[
  Gives back a lease this worker still holds.

    Input:
      KEYS[1] lease of the shard

      ARGV[1] lease value held (`workerId:token`)

    Output:
      1 when released, 0 when the lease is no longer this one
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
