-- Exact sliding-log limiter: one check, one round trip, atomic.
--
-- KEYS[1]  the requester's log: a sorted set of attempt tokens scored by
--          their time in microseconds (hash-tagged per user for Redis Cluster).
-- ARGV[1]  the attempt's token (the connection request id).
-- ARGV[2k], ARGV[2k+1]  window k: its limit, and its length in microseconds;
--          windows in increasing length.
--
-- Returns {1, 0, 0} when admitted (the token is recorded), or
-- {0, wait_us, k} when window k refuses: wait_us is the time until the entry
-- that fills it leaves, and nothing is recorded.

local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])

local key = KEYS[1]
local windows = (#ARGV - 1) / 2
local longest = tonumber(ARGV[1 + 2 * windows])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - longest)

local refused_wait, refused_window = -1, 0
for k = 1, windows do
  local limit = tonumber(ARGV[2 * k])
  local length = tonumber(ARGV[2 * k + 1])
  local since = '(' .. (now - length)
  local count = redis.call('ZCOUNT', key, since, '+inf')
  if count >= limit then
    local entry = redis.call('ZRANGEBYSCORE', key, since, '+inf', 'WITHSCORES', 'LIMIT', count - limit, 1)
    local wait = tonumber(entry[2]) + length - now
    if wait > refused_wait then
      refused_wait, refused_window = wait, k
    end
  end
end
if refused_window > 0 then
  return {0, refused_wait, refused_window}
end

redis.call('ZADD', key, now, ARGV[1])
redis.call('PEXPIRE', key, math.ceil(longest / 1000))
return {1, 0, 0}
