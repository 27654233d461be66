-- The write step of one aggregator batch: every change, dead letter and XACK in one call.
--
-- KEYS[1] the shard's lease key. ARGV[1] the caller's lease token, ARGV[2] the shard's hash
-- tag ("{610202}"); then the commands, each as a count n followed by n arguments (name
-- first). All or nothing, in three steps:
-- 1. Fencing and validation before the first write, because Redis does not roll back a
--    script that fails half way: the caller must hold the lease; every command must be known,
--    well formed and on a key of the shard; every key must be of the type the command needs
--    (or not exist); counters must hold integers; a stream written must have ids left.
-- 2. The guards (commands whose name starts with '!': the XACKs of the batch's entries, or
--    the ZREM that takes expired cases out). If there were guards and none of them changed
--    anything, this batch was applied before: a client retried a call whose reply it lost.
--    Nothing more is done and 'DUP' is returned, so a retry never counts a batch twice.
-- 3. The changes, in order. Returns the reply of the last command (the shard's new version).
-- Two pseudo-commands keep the argument list short: HINCRBYMANY key field n [field n ...],
-- and HMAXLAST key field value (set if larger). HINCRBY and HMAXLAST serve the shard's meta
-- hash only: a value there that is not a number (anyone who reaches Redis can write it) is
-- replaced, not added to; the read model's counters (HINCRBYMANY) must be integers.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('LEASE lost for ' .. KEYS[1])
end
local tag = ARGV[2]
local TYPES = {
  HSET = 'hash', HDEL = 'hash', HINCRBY = 'hash', HINCRBYMANY = 'hash', HMAXLAST = 'hash',
  SADD = 'set', ZADD = 'zset', ZREM = 'zset', ZREMRANGEBYSCORE = 'zset',
  LPUSH = 'list', LTRIM = 'list', XADD = 'stream', XACK = 'stream', EXPIRE = '', DEL = '',
}
local MAX_ARGS = 7000 -- below Lua's unpack limit (~8000)
local LAST_ID = '18446744073709551615-18446744073709551615'
local function fail(msg) return redis.error_reply('BATCH refused: ' .. msg) end
-- an integer as Redis writes and reads one (no sign '+', no leading zeros, not '-0')
local function is_int(v)
  return v and #v <= 18 and (v == '0' or string.find(v, '^%-?[1-9]%d*$')) ~= nil
end

local types, streams_ok = {}, {}
local i, nargs = 3, #ARGV
while i <= nargs do
  local n = tonumber(ARGV[i])
  if not n or n < 2 or n > MAX_ARGS or i + n > nargs then
    return fail('malformed command at argument ' .. i)
  end
  local name, key = ARGV[i + 1], ARGV[i + 2]
  local guard = string.sub(name, 1, 1) == '!'
  if guard then name = string.sub(name, 2) end
  local want = TYPES[name]
  if not want then return fail('unknown command ' .. name) end
  if not string.find(key, tag, 1, true) then return fail('key outside the shard: ' .. key) end
  if want ~= '' then
    local have = types[key]
    if have == nil then
      have = redis.call('TYPE', key).ok
      types[key] = have
    end
    if have ~= 'none' and have ~= want then
      return fail(key .. ' is a ' .. have .. ', not a ' .. want)
    end
    if name == 'HINCRBYMANY' then
      local fields = {}
      for j = i + 3, i + n, 2 do
        if not is_int(ARGV[j + 1]) then return fail('increment not an integer') end
        fields[#fields + 1] = ARGV[j]
      end
      if have == 'hash' then
        local vals = redis.call('HMGET', key, unpack(fields))
        for j = 1, #vals do
          if vals[j] and not is_int(vals[j]) then
            return fail(key .. ' field ' .. fields[j] .. ' is not an integer')
          end
        end
      end
    elseif name == 'XADD' and have == 'stream' and not streams_ok[key] then
      local info = redis.call('XINFO', 'STREAM', key)
      for j = 1, #info, 2 do
        if info[j] == 'last-generated-id' and info[j + 1] == LAST_ID then
          return fail(key .. ' has no stream ids left')
        end
      end
      streams_ok[key] = true
    elseif name == 'XACK' then
      for j = i + 4, i + n do
        if not string.find(ARGV[j], '^%d+%-%d+$') then return fail('bad entry id') end
      end
    end
  end
  i = i + n + 1
end

local guards, changed = 0, 0
i = 3
while i <= nargs do
  local n = tonumber(ARGV[i])
  if string.sub(ARGV[i + 1], 1, 1) == '!' then
    guards = guards + 1
    local args = {string.sub(ARGV[i + 1], 2)}
    for j = i + 2, i + n do args[#args + 1] = ARGV[j] end
    changed = changed + redis.call(unpack(args))
  end
  i = i + n + 1
end
if guards > 0 and changed == 0 then return 'DUP' end

local last = nil
i = 3
while i <= nargs do
  local n = tonumber(ARGV[i])
  local name = ARGV[i + 1]
  if string.sub(name, 1, 1) == '!' then
    -- done above
  elseif name == 'HINCRBYMANY' then
    local key = ARGV[i + 2]
    for j = i + 3, i + n, 2 do redis.call('HINCRBY', key, ARGV[j], ARGV[j + 1]) end
  elseif name == 'HMAXLAST' then
    local key, f, v = ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    local old = tonumber(redis.call('HGET', key, f) or '0')
    if not old or tonumber(v) > old then redis.call('HSET', key, f, v) end
  elseif name == 'HINCRBY' then
    local key, f, by = ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    if is_int(redis.call('HGET', key, f) or '0') then
      last = redis.call('HINCRBY', key, f, by)
    else
      redis.call('HSET', key, f, by)
      last = tonumber(by)
    end
  else
    last = redis.call(unpack(ARGV, i + 1, i + n))
  end
  i = i + n + 1
end
return last
