--[[
  A rekey's compare-and-set of one row.

    Input:
      KEYS[1] vectors hash of the partition
      KEYS[2] templates hash of the partition

      ARGV[1] faissId
      ARGV[2] the bytes read
      ARGV[3] the re-sealed bytes
      ARGV[4] subjectId (recorded in the row's meta if older than `sub`)

    Output:
      1 if the row still held the bytes read and was replaced, else 0 (pruned, or re-sealed
      meanwhile).
]]
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
local meta = cjson.decode(redis.call('HGET', KEYS[2], ARGV[1]))
if meta.sub == nil then
  meta.sub = ARGV[4]
  redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(meta))
end
return 1
