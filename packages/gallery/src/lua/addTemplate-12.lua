--[[
  Adds a subject with its first template, or a template to an existing subject.

    Input:
      KEYS[1]  subjects hash of the partition (subjectId -> record)
      KEYS[2]  partitions hash (partition -> subject count)
      KEYS[3]  seq counter
      KEYS[4]  faiss-id counter (unused here: the id is reserved beforehand)
      KEYS[5]  templates hash of the partition (faissId -> meta)
      KEYS[6]  vectors hash of the partition (faissId -> bytes)
      KEYS[7]  owners hash of the partition (faissId -> subjectId)
      KEYS[8]  change log of the shard (sorted set)
      KEYS[9]  counts hash of the shard (modelId -> live templates)
      KEYS[10] rows sorted set of the shard and model
      KEYS[11] fence of the shard
      KEYS[12] partition deletions hash (partition -> record of a deletion in progress)

      ARGV[1]  mode: 'subject' (a new subject) or 'template' (add to an existing one)
      ARGV[2]  partition
      ARGV[3]  subjectId
      ARGV[4]  shard
      ARGV[5]  modelId
      ARGV[6]  template bytes (sealed to the reserved faiss id)
      ARGV[7]  createdAt
      ARGV[8]  requestId ('' for none): a replayed request answers its first receipt
      ARGV[9]  fencing token ('' for an unfenced write)
      ARGV[10] faissId (reserved beforehand)
      ARGV[11] most templates the subject may hold, mode 'template' ('' for no limit)

    The subject record keeps the first template's receipt (r, f, q, c) and, in `a`, each appended
    template's by its request id (requestId -> {f, q, c}): as many as the subject has templates,
    and deleted with it. Records written before `a` read as having no appends recorded.

    Output:
      {replayed (0|1), faissId, seq, createdAt}, or an error reply SUBJECT_EXISTS,
      SUBJECT_NOT_FOUND, SHARD_MISMATCH, FENCED, PARTITION_DELETING or TOO_MANY_TEMPLATES.
]]
--- @include "includes/refuseIfFenced"
local refused = refuse_if_fenced(KEYS[11], ARGV[9])
if refused then return refused end
-- The partition's keys are being erased: nothing may be added under its name until that is done.
if redis.call('HEXISTS', KEYS[12], ARGV[2]) == 1 then
  return redis.error_reply("PARTITION_DELETING partition '" .. ARGV[2] .. "' is being deleted; retry")
end
local existing = redis.call('HGET', KEYS[1], ARGV[3])
local record
if ARGV[1] == 'subject' then
  if existing then
    record = cjson.decode(existing)
    if ARGV[8] ~= '' and record.r == ARGV[8] then return {1, record.f, record.q, record.c} end
    return redis.error_reply("SUBJECT_EXISTS subject already enrolled in partition '" .. ARGV[2] .. "'")
  end
  record = {s = tonumber(ARGV[4]), c = ARGV[7], r = ARGV[8], ids = {}}
else
  if not existing then return redis.error_reply("SUBJECT_NOT_FOUND subject not found in partition '" .. ARGV[2] .. "'") end
  record = cjson.decode(existing)
  if record.s ~= tonumber(ARGV[4]) then return redis.error_reply('SHARD_MISMATCH subject lives in another shard') end
  local appended = ARGV[8] ~= '' and record.a and record.a[ARGV[8]]
  if appended then return {1, appended.f, appended.q, appended.c} end
  -- After the replay check: a redelivered append that committed is answered, not refused.
  if ARGV[11] ~= '' and #record.ids >= tonumber(ARGV[11]) then
    return redis.error_reply('TOO_MANY_TEMPLATES subject already holds ' .. #record.ids ..
      ' templates, the most allowed (MAX_TEMPLATES_PER_SUBJECT)')
  end
end
if ARGV[1] == 'subject' then redis.call('HINCRBY', KEYS[2], ARGV[2], 1) end
local faiss_id = tonumber(ARGV[10])
local seq = redis.call('INCR', KEYS[3])
table.insert(record.ids, faiss_id)
if ARGV[1] == 'subject' then
  record.f = faiss_id
  record.q = seq
elseif ARGV[8] ~= '' then
  record.a = record.a or {}
  record.a[ARGV[8]] = {f = faiss_id, q = seq, c = ARGV[7]}
end
redis.call('HSET', KEYS[1], ARGV[3], cjson.encode(record))
redis.call('HSET', KEYS[5], faiss_id, cjson.encode({m = ARGV[5], c = ARGV[7], sub = ARGV[3], q = seq}))
redis.call('HSET', KEYS[6], faiss_id, ARGV[6])
redis.call('HSET', KEYS[7], faiss_id, ARGV[3])
redis.call('ZADD', KEYS[8], seq, seq .. '|a|' .. faiss_id .. '|' .. ARGV[5])
redis.call('HINCRBY', KEYS[9], ARGV[5], 1)
redis.call('ZADD', KEYS[10], faiss_id, faiss_id)
return {0, faiss_id, seq, ARGV[7]}
