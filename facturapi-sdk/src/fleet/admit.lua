-- Admits one request of a class for the whole fleet: a lease (the fleet's concurrency cap)
-- and a pacing slot (GCRA on the fleet's learned rate). Times are Redis's own clock, in µs.
--
-- KEYS: state hash, leases (member → expiry), starts (member → slot time), successes
-- ARGV: lease id, lease ttl, ceiling, k (first), margin, probe, hold, horizon, initial cap
-- Returns {admitted (0/1), wait µs (-1: full, poll), epoch, rate, leases held, cap,
--          rate cuts, cap cuts}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local s, leases, starts = KEYS[1], KEYS[2], KEYS[3]
local st = redis.call('HMGET', s, 'pause', 'cap', 'epoch', 'phase', 'tat', 'last', 'busy',
  'cur', 'w', 'r0', 'cap_at', 'hold', 'k', 'cap_cut', 'rate_cuts', 'cap_cuts')
local rate_cuts, cap_cuts = tonumber(st[15]) or 0, tonumber(st[16]) or 0
local ceiling = tonumber(ARGV[3])
local cap = tonumber(st[2])
if not cap then
  -- The fleet starts at the policy's concurrency, not at its ceiling.
  cap = math.min(tonumber(ARGV[9]), ceiling)
  redis.call('HSET', s, 'cap', cap, 'cap_at', now)
end
local epoch = tonumber(st[3]) or 0
local phase = tonumber(st[4]) or 0
local cur = tonumber(st[8]) or 0
local pause = tonumber(st[1]) or 0
if pause > now then
  return {0, pause - now, epoch, tostring(cur), 0, cap, rate_cuts, cap_cuts}
end

-- Leases of crashed processes expire.
local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now)
if #expired > 0 then
  redis.call('ZREM', leases, unpack(expired))
  redis.call('ZREM', starts, unpack(expired))
end
local held = redis.call('ZCARD', leases)
if held >= cap then
  -- While requests wait for it, the cap doubles each second until its first cut, then
  -- grows back by one after a hold that doubles with each cut.
  local cap_at = tonumber(st[11]) or now
  if cap < ceiling then
    if not st[14] and now - cap_at >= 1000000 then
      cap = math.min(cap * 2, ceiling)
      redis.call('HSET', s, 'cap', cap, 'cap_at', now)
    elseif st[14] and now - cap_at >= (tonumber(st[12]) or tonumber(ARGV[7])) then
      cap = cap + 1
      redis.call('HSET', s, 'cap', cap, 'cap_at', now)
    end
  end
  if held >= cap then
    return {0, -1, epoch, tostring(cur), held, cap, rate_cuts, cap_cuts}
  end
end

local slot = now
if phase > 0 then
  local tat = tonumber(st[5]) or now
  local last = tonumber(st[6]) or now
  local busy = tonumber(st[7]) or 0
  -- Nothing admitted for a second: the fleet was idle (or not running), and the accepted
  -- rate a cut reads starts again here (idle time is not a low rate).
  if now - last > 1000000 then
    redis.call('HSET', s, 'active_from', now)
  end
  -- Growth time runs only while requests wait for the schedule (demand meets the rate).
  if cur > 0 and tat + 500000 / cur >= now then
    busy = busy + (now - last)
  end
  local x = busy / 1000000
  local r0 = tonumber(st[10])
  local r
  if phase == 1 then
    r = r0 * 2 ^ x
  elseif phase == 2 then
    r = r0 * 1.25 ^ x
  else
    local w = tonumber(st[9])
    local k = (tonumber(st[13]) or tonumber(ARGV[4])) / 1000000
    local plateau = math.max(w * (1 - tonumber(ARGV[5])), r0)
    if x < k then
      r = plateau - (plateau - r0) * (1 - x / k) ^ 3
    else
      r = plateau + tonumber(ARGV[6]) * w * (2 ^ (x - k) - 1)
    end
  end
  redis.call('HSET', s, 'last', now, 'busy', busy, 'cur', r)
  cur = r
  -- Slots are booked a horizon ahead at most: a request booked far ahead would keep its
  -- slow slot after the rate grows. The others come back when the schedule nears.
  local horizon = math.max(tonumber(ARGV[8]), 1000000 / r)
  if tat > now + horizon then
    return {0, tat - now - horizon, epoch, tostring(cur), held, cap, rate_cuts, cap_cuts}
  end
  slot = math.max(tat, now)
  redis.call('HSET', s, 'tat', slot + 1000000 / r)
end
redis.call('HSETNX', s, 'born', now)
redis.call('ZADD', leases, now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZADD', starts, slot, ARGV[1])
return {1, slot - now, epoch, tostring(cur), held + 1, cap, rate_cuts, cap_cuts}
