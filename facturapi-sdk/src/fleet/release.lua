-- A request of the fleet finished: its lease ends, and a success is counted (the fleet's
-- accepted rate) with the level it was served at (the most served at once lately).
--
-- KEYS: state hash, leases, starts, successes (member → time)
-- ARGV: lease id, served (0/1), level window
-- Returns {0, 0} (it decides nothing)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- Its level: the fleet's requests sent and not finished, itself included.
local level = redis.call('ZCOUNT', KEYS[3], '-inf', now)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[2] == '1' then
  redis.call('ZADD', KEYS[4], now, ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - 10000000)
  local st = redis.call('HMGET', KEYS[1], 'peak', 'peak_at')
  local peak = tonumber(st[1]) or 0
  local at = tonumber(st[2]) or 0
  if level >= peak or now - at > tonumber(ARGV[3]) then
    redis.call('HSET', KEYS[1], 'peak', level, 'peak_at', now)
  end
end
return {0, 0}
