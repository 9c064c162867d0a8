-- Stores users' counters unless the cache already holds a newer version,
-- and announces what it stored.
--
-- KEYS     the users' counter hashes (hash-tagged per user; on a cluster,
--          one key a call).
-- ARGV[1]  the TTL in seconds; ARGV[2] the channel that announces stored
--          counters ('' for none); ARGV[3] who stores them (announced, so a
--          process can skip its own); ARGV[4] the field names, separated by
--          spaces; ARGV[4 + i] for KEYS[i]: its version and its values in
--          field order, separated by spaces.
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
  local cached = redis.call('HGET', key, 'v')
  if not (cached and tonumber(cached) >= tonumber(version)) then
    local pairs = {}
    for f = 1, #names do
      pairs[#pairs + 1] = names[f]
      pairs[#pairs + 1] = values[f + 1]
    end
    redis.call('HSET', key, 'v', version, unpack(pairs))
    redis.call('EXPIRE', key, ARGV[1])
    if ARGV[2] ~= '' then
      redis.call('PUBLISH', ARGV[2], ARGV[3] .. ' ' .. key .. ' ' .. version .. ' ' .. table.concat(pairs, ' '))
    end
    stored = stored + 1
  end
end
return stored
