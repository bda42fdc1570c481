-- A 429 seen by one process: one congestion event for the whole fleet. A request admitted
-- before the last cut (an older epoch) is that cut's aftermath and changes nothing, so N
-- processes refused together make one cut, not N.
--
-- KEYS: state hash, leases, starts, successes
-- ARGV: lease id, epoch at admission, retry-after µs, ceiling, beta, first beta,
--       window, grace, min samples, hold, max hold, moment, level window, k min, k max,
--       same limit, patience, probe budget, probe time, readings (the learner's constants of
--       the same names: `adaptive.rs` documents them)
-- Returns {what (0 nothing, 1 rate cut, 2 cap cut, 3 pause), epoch}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local s = KEYS[1]
-- A cut starts the schedule again two slots from now: the server that refused this request
-- has no credit left, and the fleet's sends land a few milliseconds off their slots (each
-- process sleeps to its slot after a round trip to Redis): one slot's credit absorbs that.
-- The benchmark's 4 processes (seed 9): started at once, two 429s a probe and 2.0 % of
-- attempts over the run; one slot on, 1.5 %; two slots on, one 429 a probe and 1.1 %.
local function restart(r)
  return now + 2000000 / r
end
-- Its level: the fleet's requests sent and not finished, itself included (a 429 is quick).
local level = redis.call('ZCOUNT', KEYS[3], '-inf', now)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local st = redis.call('HMGET', s, 'epoch', 'phase', 'cut', 'cur', 'r0', 'peak', 'peak_at',
  'top_at', 'cap', 'hold', 'paused', 'born', 'w', 'k', 'active_from', 'readings', 'w_since')
local epoch = tonumber(st[1]) or 0
if tonumber(ARGV[2]) < epoch then
  return {0, epoch}
end
local phase = tonumber(st[2]) or 0
local cut = tonumber(st[3]) or 0
local ceiling = tonumber(ARGV[4])
local min_samples = tonumber(ARGV[9])
local peak = tonumber(st[6]) or 0
if now - (tonumber(st[7]) or 0) > tonumber(ARGV[13]) then
  peak = 0
end

-- A cap refuses above the most the server served at once lately, and does so at two
-- moments apart (one burst into a token bucket is refused above it too, but only at once).
-- Evidence of a cap may cut the cap; the rate is judged all the same (paced at what a cap
-- lets through, a fleet loses nothing).
if phase > 0 and peak > 0 and level > peak then
  local top_at = tonumber(st[8]) or 0
  if top_at > 0 and now - top_at >= tonumber(ARGV[12]) and now - top_at <= 10000000 then
    local old = tonumber(st[9]) or ceiling
    if peak < old then
      local hold = math.min((tonumber(st[10]) or tonumber(ARGV[10]) / 2) * 2, tonumber(ARGV[11]))
      redis.call('HSET', s, 'cap', peak, 'cap_at', now, 'hold', hold, 'top_at', 0, 'cap_cut', 1)
      redis.call('HINCRBY', s, 'cap_cuts', 1)
    end
  elseif top_at == 0 or now - top_at > 10000000 then
    redis.call('HSET', s, 'top_at', now)
  end
end

-- A rate limit. 429s within a cut's grace cut again only when the cut was not deep enough
-- (the fleet accepts well below the new rate): what a bucket the fleet drained still
-- refuses after the cut is not a new event.
if phase > 0 and now - cut < tonumber(ARGV[8]) then
  local refused = redis.call('HINCRBY', s, 'refused', 1)
  local span = now - cut
  local n = redis.call('ZCOUNT', KEYS[4], cut, now)
  local accepted = n * 1000000 / math.max(span, 1)
  local r0 = tonumber(st[5])
  if refused >= min_samples and span >= 2 * tonumber(ARGV[12]) and accepted * 1.1 < r0 then
    local r = math.max(tonumber(ARGV[5]) * accepted, 0.1)
    redis.call('HSET', s, 'epoch', epoch + 1, 'cut', now, 'busy', 0, 'last', now,
      'tat', restart(r),
      'refused', 0, 'w', accepted, 'r0', r, 'cur', r, 'k', tonumber(ARGV[14]), 'readings', 1,
      'w_since', now)
    redis.call('HINCRBY', s, 'rate_cuts', 1)
    return {1, epoch + 1}
  end
  return {0, epoch}
end

-- The accepted rate: over the last second while the rate is still being found, since the
-- cut (up to the window) after that.
-- Before the first cut, since the fleet's first request (up to 2 s): its first 429s come
-- back before the requests served with them.
local from = now - 1000000
if phase == 0 then
  from = math.max(tonumber(st[12]) or now, now - 2000000)
elseif phase > 2 then
  from = math.max(cut, now - tonumber(ARGV[7]))
end
-- Not from before an idle gap: a fleet deployed again reads its rate from its own start.
from = math.max(from, tonumber(st[15]) or from)
local n = redis.call('ZCOUNT', KEYS[4], from, now)
-- Over a second at least; the first cut over a quarter of one at least: a fleet's first
-- 429 comes within its first round trips, and a second's floor read a 20/s limit as 3/s
-- (its slow start then took 4 s). What the burst credit adds, the next cut takes back.
local floor = 1000000
if phase == 0 then
  floor = 250000
end
local accepted = n * 1000000 / math.max(now - from, floor)
if phase == 0 and n < min_samples and now - (tonumber(st[12]) or now) < 1000000 then
  -- The first 429s come back before the requests served with them: within the fleet's
  -- first second, they wait for those (the refused request waits out its own Retry-After;
  -- the fleet's cap, still small, bounds how many are refused meanwhile).
  return {0, epoch}
end
if phase == 0 and n < min_samples and not st[11] then
  -- Still nothing to measure: the fleet waits out this Retry-After, once.
  redis.call('HSET', s, 'pause', now + tonumber(ARGV[3]), 'paused', 1, 'epoch', epoch + 1)
  return {3, epoch + 1}
end
local cur = tonumber(st[4]) or 0
local w
local beta = tonumber(ARGV[5])
local next_phase = 3
if phase == 0 then
  w = math.max(accepted, 1)
  beta = tonumber(ARGV[6])
  next_phase = 1
elseif phase == 1 then
  -- The slow start's end reads a second that began under the limit, with the burst credit
  -- full: the first beta too.
  w = math.max(accepted, 1)
  beta = tonumber(ARGV[6])
  next_phase = 2
elseif n >= min_samples then
  w = math.min(cur, accepted)
else
  w = cur
end
-- While cuts find the same limit, their readings are averaged and the cubic's time k grows
-- with the time the limit has held, up to what keeps the probes' 429s within the budget: a
-- stable limit is probed, and refused, less often. A limit that moved resets both.
local k = tonumber(ARGV[14])
local old_w = tonumber(st[13])
local readings = 1
local w_since = now
if phase > 2 and old_w and math.abs(w - old_w) <= tonumber(ARGV[16]) * old_w then
  readings = math.min((tonumber(st[16]) or 1) + 1, tonumber(ARGV[20]))
  w = old_w + (w - old_w) / readings
  w_since = tonumber(st[17]) or now
  local longest = (1 / (tonumber(ARGV[18]) * w) - tonumber(ARGV[19])) * 1000000
  longest = math.max(tonumber(ARGV[14]), math.min(longest, tonumber(ARGV[15])))
  k = math.min(k + tonumber(ARGV[17]) * (now - w_since), longest)
end
local r = math.max(beta * w, 0.1)
if phase > 0 and cur > 0 then
  -- A cut never raises the rate: growth may hold it under beta times the readings' mean.
  r = math.min(r, cur)
end
redis.call('HSET', s, 'epoch', epoch + 1, 'phase', next_phase, 'cut', now, 'busy', 0,
  'last', now, 'tat', restart(r), 'refused', 0, 'w', w, 'r0', r, 'cur', r, 'k', k,
  'readings', readings, 'w_since', w_since)
redis.call('HINCRBY', s, 'rate_cuts', 1)
return {1, epoch + 1}
