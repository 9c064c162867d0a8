-- Stores users' counters unless the cache already holds a newer version,
-- and announces what it stored.
--
-- KEYS     the users' counter hashes (hash-tagged per user; on a cluster,
--          one key a call).
-- ARGV[1]  the TTL in seconds; ARGV[2] the channel that announces stored
--          counters ('' for none); ARGV[3] who stores them (announced, so a
--          process can skip its own); ARGV[4] the field names, separated by
--          spaces, the last one 't' (when the values were read from SQL, in
--          µs); ARGV[4 + i] for KEYS[i]: its version and its values in field
--          order, separated by spaces.
-- The same version read later only moves 't' forward (same state, younger),
-- unannounced: in-process copies age out and read the younger one here.
-- Returns how many keys were stored (those with an older version or none).
-- Each announcement is "ORIGIN KEY VERSION FIELD VALUE ...".

local names = {}
for name in string.gmatch(ARGV[4], '%S+') do
  names[#names + 1] = name
end
local stored = 0
for i, key in ipairs(KEYS) do
  local values = {}
  for value in string.gmatch(ARGV[4 + i], '%S+') do
    values[#values + 1] = value
  end
  local version = values[1]
  local read_at = values[#values]
  local cached = redis.call('HMGET', key, 'v', 't')
  local newer = not (cached[1] and tonumber(cached[1]) >= tonumber(version))
  local younger = cached[1] and tonumber(cached[1]) == tonumber(version)
    and tonumber(cached[2] or '0') < tonumber(read_at)
  if newer or younger then
    local pairs = {}
    if newer then
      for f = 1, #names do
        pairs[#pairs + 1] = names[f]
        pairs[#pairs + 1] = values[f + 1]
      end
    else
      pairs = {'t', read_at}
    end
    redis.call('HSET', key, 'v', version, unpack(pairs))
    redis.call('EXPIRE', key, ARGV[1])
    if newer and ARGV[2] ~= '' then
      redis.call('PUBLISH', ARGV[2], ARGV[3] .. ' ' .. key .. ' ' .. version .. ' ' .. table.concat(pairs, ' '))
    end
    if newer then
      stored = stored + 1
    end
  end
end
return stored
