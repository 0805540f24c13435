--[[
  Begins deleting a partition: records the deletion (what the partition held, and when, which
  makes the record unique) and drops the partition from the partitions hash, atomically. From
  here on the partition is gone; its keys are erased next (erasePartitionKeys), then the record
  (finishPartitionDeletion). A deletion already begun is answered with its record.

    Input:
      KEYS[1] partitions hash (partition -> subject count)
      KEYS[2] partition deletions hash (partition -> JSON record)
      KEYS[3] owners hash of the partition (faissId -> subjectId: one field per live template)

      ARGV[1] partition

    Output:
      the record, JSON {subjects, templates, at}; nil when there is no such partition.
]]
local pending = redis.call('HGET', KEYS[2], ARGV[1])
if pending then return pending end
local subjects = redis.call('HGET', KEYS[1], ARGV[1])
if not subjects then return false end
local time = redis.call('TIME')
local record = cjson.encode({
  subjects = tonumber(subjects),
  templates = redis.call('HLEN', KEYS[3]),
  at = time[1] .. '.' .. time[2]
})
redis.call('HSET', KEYS[2], ARGV[1], record)
redis.call('HDEL', KEYS[1], ARGV[1])
return record
