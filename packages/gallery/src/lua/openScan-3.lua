--[[
  A scan's fixed point.

    Input:
      KEYS[1] seq counter
      KEYS[2] counts hash of the shard
      KEYS[3] faiss-id counter

      ARGV[1] modelId

    Output:
      {seq, live template count of the model, maxFaissId}
]]
return {
  tonumber(redis.call('GET', KEYS[1]) or '0'),
  tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0'),
  tonumber(redis.call('GET', KEYS[3]) or '0')
}
