--[[
  Takes a free shard. The fencing token is incremented only on a successful acquisition.

    Input:
      KEYS[1] lease of the shard
      KEYS[2] fence of the shard

      ARGV[1] workerId
      ARGV[2] lease time (ms)

    Output:
      the new fencing token, or 0 when the shard is held
]]
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
return token
