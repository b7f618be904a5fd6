-- RateLimit's shared bucket: GCRA on the server's clock, with the adaptive rate.
--
-- KEYS[1]  the bucket's state, one string "t h [r s]" (below); every call touches this key
--          only, with GET and SET (3 commands inside the script, TIME included).
-- ARGV[1]  "take" or "adapt"
-- ARGV[2]  configured rate, permits per second       ARGV[3]  burst, permits
-- ARGV[4]  recovery step, permits/s per second        ARGV[5]  lowest rate, permits per second
-- take:  ARGV[6]  longest acceptable wait, microseconds (-1: no bound)
--        returns {1, wait_us} (reserved: go in wait_us) or {0, wait_us} (refused, nothing taken)
-- adapt: ARGV[6]  status   ARGV[7] declared rate (/s)   ARGV[8] its window (s)
--        ARGV[9]  remaining   ARGV[10] reset (s from now)   ARGV[11] retry-after (s)
--        ARGV[12] requests in flight   ARGV[13] longest pause (s)   ("" = absent)
--        returns {reason, pause_s, old_rate, new_rate} (numbers as strings)
--
-- State (times are microseconds of the server's TIME, the only clock):
--   t  GCRA theoretical arrival time: the next permit is free at t - tau (tau = (cap-1)/rate)
--   r  the adapted rate (permits/s) as of s; absent = the configured rate
--   s  when r was set        h  recovery holds until then
-- The adapted rate climbs back by `step` per second once the hold has passed. The key
-- expires once its state would be that of a new bucket (full, at the configured rate).

local key = KEYS[1]
local op = ARGV[1]
local base = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local step = tonumber(ARGV[4])
local min_rate = tonumber(ARGV[5])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

local state = {}
for field in string.gmatch(redis.call('GET', key) or '', '%S+') do
  table.insert(state, tonumber(field))
end
local tat = state[1] or 0
local h = state[2] or 0
local r = state[3]
local s = state[4] or now

-- the rate now: r, recovering additively from max(s, h) up to base
local rate = base
if r and r < base then
  local start = math.max(s, h)
  rate = r
  if now > start then
    rate = math.min(base, r + (now - start) / 1e6 * step)
  end
end

local interval, tau
local function shape()
  interval = 1e6 / rate
  tau = (math.max(1, burst * rate / base) - 1) * interval
end
shape()

local function save()
  local text = string.format('%.3f %d', tat, h)
  local done = math.max(tat, h)
  if rate < base then
    text = text .. string.format(' %.17g %d', rate, now)
    done = math.max(done, math.max(now, h) + (base - rate) / step * 1e6)
  end
  if done <= now then  -- the state of a new bucket: nothing to keep
    redis.call('DEL', key)
    return
  end
  redis.call('SET', key, text, 'PX', math.ceil((done - now) / 1000) + 1000)
end

if op == 'take' then
  local bound = tonumber(ARGV[6])
  local from = math.max(tat, now)
  local wait = math.max(0, from - tau - now)
  if bound >= 0 and wait > bound then
    return {0, math.ceil(wait)}
  end
  tat = from + interval
  save()
  return {1, math.ceil(wait)}
end

-- adapt: the rules of resilient_http._bucket.adapt, on the server's clock
local function arg(i)
  if ARGV[i] == '' then return nil end
  return tonumber(ARGV[i])
end
local status = tonumber(ARGV[6])
local declared, window = arg(7), arg(8)
local remaining, reset, retry_after = arg(9), arg(10), arg(11)
local in_flight = tonumber(ARGV[12])
local max_pause = tonumber(ARGV[13])
local old = rate
local reasons = {}
local pause = 0

local function hold(till) if till > h then h = till end end
local function set_rate(x)
  rate = math.min(base, math.max(x, min_rate))
  shape()
end
local function limit_rate(x, seconds)
  if x < rate * (1 - 1e-6) then
    set_rate(x)
    hold(now + seconds * 1e6)
    return true
  end
  if x <= rate * (1 + 1e-6) then hold(now + seconds * 1e6) end
  return false
end
local function cap_tokens(n)  -- at most n permits free now
  tat = math.max(tat, now + tau - (math.max(0, n) - 1) * interval)
end
local function pause_until(till)  -- the next permit is free at `till`, not before
  hold(till)
  if till + tau > tat + 1 then
    tat = till + tau
    return true
  end
  return false
end

if declared then
  if limit_rate(declared, math.min(max_pause, window or 1)) then table.insert(reasons, 'policy') end
elseif remaining and reset and reset > 0 and remaining >= 1 then
  if limit_rate(remaining / reset, math.min(max_pause, reset)) then
    table.insert(reasons, 'remaining')
  end
end
if status == 429 then
  if not declared and now >= h then
    local seconds = 1 / rate
    set_rate(rate * 0.5)
    hold(now + seconds * 1e6)
    table.insert(reasons, '429')
  end
  cap_tokens(0)
end
if remaining then
  if remaining >= 1 then
    cap_tokens(remaining - in_flight)
  elseif reset and (not declared or reset <= 1 / declared) then
    local delay = math.min(reset, max_pause)
    if pause_until(now + delay * 1e6) then
      pause = delay
      table.insert(reasons, 'exhausted')
    end
  else
    cap_tokens(0)
  end
end
if (status == 429 or status == 503) and retry_after then
  local delay = math.min(retry_after, max_pause)
  if pause_until(now + delay * 1e6) then
    pause = math.max(pause, delay)
    table.insert(reasons, 'retry-after')
  end
end
save()
return {table.concat(reasons, '+'), tostring(pause), tostring(old), tostring(rate)}
