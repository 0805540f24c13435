--[[
  A subject's record and every template of it, atomically.

    Input:
      KEYS[1] subjects hash of the partition
      KEYS[2] templates hash of the partition
      KEYS[3] vectors hash of the partition

      ARGV[1] subjectId

    Output:
      {} when the subject is absent, else {record, faissId, meta, bytes, ...}
]]
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if not existing then return {} end
local record = cjson.decode(existing)
local out = {existing}
for _, faiss_id in ipairs(record.ids) do
  table.insert(out, tostring(faiss_id))
  table.insert(out, redis.call('HGET', KEYS[2], faiss_id))
  table.insert(out, redis.call('HGET', KEYS[3], faiss_id))
end
return out
