--[[
  Erases one page of a deleted partition's keys. Every key of a partition starts with its
  `p:<partition>:` base (partition names cannot contain ':' or glob characters), so a SCAN of
  that pattern finds them all; nothing new is written under it while the deletion is recorded
  (adds are refused), so a full SCAN misses none. Checked against the record, so a late caller
  cannot touch a partition created again after the deletion finished.

    Input:
      KEYS[1] partition deletions hash

      ARGV[1] partition
      ARGV[2] the deletion's record, as beginPartitionDeletion answered it
      ARGV[3] SCAN pattern of the partition's keys
      ARGV[4] SCAN cursor ('0' to start)
      ARGV[5] SCAN COUNT

    Output:
      the next cursor; '0' when the scan is complete (or the deletion is no longer this one).
]]
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return '0' end
local page = redis.call('SCAN', ARGV[4], 'MATCH', ARGV[3], 'COUNT', ARGV[5])
for _, key in ipairs(page[2]) do redis.call('UNLINK', key) end
return page[1]
