-- Stores users' counters unless the cache already holds a newer version,
-- and announces what it stored.
--
-- KEYS     the users' counter hashes (hash-tagged per user; on a cluster,
--          one key a call).
-- ARGV[1]  the TTL in seconds; ARGV[2] the channel that announces stored
--          counters ('' for none); ARGV[3] who stores them (announced, so a
--          process can skip its own); ARGV[4] the number of fields F;
--          ARGV[5 .. 4+F] the field names; then for each key its version
--          and its F values.
-- Returns how many keys were stored (those with an older version or none).
-- Each announcement is "ORIGIN KEY VERSION FIELD VALUE ...".

local fields = tonumber(ARGV[4])
local stored = 0
for i, key in ipairs(KEYS) do
  local base = 4 + fields + (i - 1) * (fields + 1)
  local version = ARGV[base + 1]
  local cached = redis.call('HGET', key, 'v')
  if not (cached and tonumber(cached) >= tonumber(version)) then
    local pairs = {}
    for f = 1, fields do
      pairs[#pairs + 1] = ARGV[4 + f]
      pairs[#pairs + 1] = ARGV[base + 1 + f]
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
