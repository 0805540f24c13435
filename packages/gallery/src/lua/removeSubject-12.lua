--[[
  Removes a subject and all its templates. The template rows stay (marked removed) until the
  change log is pruned past the removal, so that a scan opened earlier still sees them. With a
  request id the removal is recorded, so that its redelivery or retry is answered with it (even
  once the subject is enrolled again) for the retention; older records are pruned here.

    Input:
      KEYS[1] subjects hash of the partition
      KEYS[2] partitions hash
      KEYS[3] seq counter
      KEYS[4] templates hash of the partition
      KEYS[5] owners hash of the partition
      KEYS[6] removed hash of the partition (faissId -> seq of the removal)
      KEYS[7] change log of the shard
      KEYS[8] counts hash of the shard
      KEYS[9] fence of the shard
      KEYS[10] partition deletions hash
      KEYS[11] removals hash of the partition (requestId -> JSON {s: subject digest, h: shard, q: seq, t: time})
      KEYS[12] removals of the partition by time (sorted set, score = time, member = requestId)

      ARGV[1] partition
      ARGV[2] subjectId
      ARGV[3] shard
      ARGV[4] fencing token ('' for an unfenced write)
      ARGV[5] request id ('' for none)
      ARGV[6] now, ms
      ARGV[7] how long a removal is remembered, ms
      ARGV[8] digest of the subject id (what the record keeps of the subject)

    Output:
      {lastSeq, faissId1, modelId1, ...}; {seq, 'replay', shard} for a removal recorded under the
      request id; or an error reply SUBJECT_NOT_FOUND, SHARD_MISMATCH, FENCED or
      PARTITION_NOT_FOUND (its deletion has begun).
]]
--- @include "includes/refuseIfFenced"
local refused = refuse_if_fenced(KEYS[9], ARGV[4])
if refused then return refused end
if redis.call('HEXISTS', KEYS[10], ARGV[1]) == 1 then
  return redis.error_reply("PARTITION_NOT_FOUND partition '" .. ARGV[1] .. "' does not exist")
end
local now = tonumber(ARGV[6])
local oldest = now - tonumber(ARGV[7])
if ARGV[5] ~= '' then
  local recorded = redis.call('HGET', KEYS[11], ARGV[5])
  if recorded then
    local receipt = cjson.decode(recorded)
    if receipt.s == ARGV[8] and receipt.t >= oldest then return {receipt.q, 'replay', receipt.h} end
  end
end
local existing = redis.call('HGET', KEYS[1], ARGV[2])
if not existing then return redis.error_reply("SUBJECT_NOT_FOUND subject not found in partition '" .. ARGV[1] .. "'") end
local record = cjson.decode(existing)
if record.s ~= tonumber(ARGV[3]) then return redis.error_reply('SHARD_MISMATCH subject lives in another shard') end
local result = {0}
for _, faiss_id in ipairs(record.ids) do
  local meta = cjson.decode(redis.call('HGET', KEYS[4], faiss_id))
  local seq = redis.call('INCR', KEYS[3])
  redis.call('ZADD', KEYS[7], seq, seq .. '|r|' .. faiss_id .. '|' .. meta.m)
  redis.call('HSET', KEYS[6], faiss_id, seq)
  redis.call('HDEL', KEYS[5], faiss_id)
  if redis.call('HINCRBY', KEYS[8], meta.m, -1) <= 0 then redis.call('HDEL', KEYS[8], meta.m) end
  result[1] = seq
  table.insert(result, faiss_id)
  table.insert(result, meta.m)
end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
if ARGV[5] ~= '' then
  for _, expired in ipairs(redis.call('ZRANGEBYSCORE', KEYS[12], '-inf', '(' .. oldest)) do
    redis.call('HDEL', KEYS[11], expired)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[12], '-inf', '(' .. oldest)
  redis.call('HSET', KEYS[11], ARGV[5], cjson.encode({s = ARGV[8], h = record.s, q = result[1], t = now}))
  redis.call('ZADD', KEYS[12], now, ARGV[5])
end
return result
