-- Stores a user's counters unless the cache already holds a newer version.
--
-- KEYS[1]  the user's counter hash (hash-tagged per user).
-- ARGV[1]  the version of the counters given; ARGV[2] the TTL in seconds;
-- ARGV[3..] field, value pairs.
-- Returns 1 when stored, 0 when the cached version was as new or newer.

local cached = redis.call('HGET', KEYS[1], 'v')
if cached and tonumber(cached) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
