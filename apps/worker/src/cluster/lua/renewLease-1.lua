--[[
  Extends a lease this worker still holds.

    Input:
      KEYS[1] lease of the shard

      ARGV[1] lease value held (`workerId:token`)
      ARGV[2] lease time (ms)

    Output:
      1 when renewed, 0 when the lease is no longer this one
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
