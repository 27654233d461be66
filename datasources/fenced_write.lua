-- The write step of one aggregator batch: every change, dead letter and XACK in one call.
--
-- KEYS[1] the shard's lease key. ARGV[1] the caller's lease token; then the commands, each as
-- a count n followed by n arguments (name first). A caller that no longer holds the lease is
-- refused before anything is written (fencing), so a stalled or partitioned aggregator can
-- never apply a batch the next holder also applies. Every key carries the shard's hash tag
-- (one Redis Cluster slot). Two pseudo-commands keep the argument list short:
-- HINCRBYMANY key field n [field n ...], and HMAXLAST key field value (set if larger).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('LEASE lost for ' .. KEYS[1])
end
local i, last = 2, nil
local nargs = #ARGV
while i <= nargs do
  local n = tonumber(ARGV[i])
  local name = ARGV[i + 1]
  if name == 'HINCRBYMANY' then
    local key = ARGV[i + 2]
    for j = i + 3, i + n, 2 do redis.call('HINCRBY', key, ARGV[j], ARGV[j + 1]) end
  elseif name == 'HMAXLAST' then
    local key, f, v = ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    if tonumber(v) > tonumber(redis.call('HGET', key, f) or '0') then
      redis.call('HSET', key, f, v)
    end
  else
    last = redis.call(unpack(ARGV, i + 1, i + n))
  end
  i = i + n + 1
end
return last
