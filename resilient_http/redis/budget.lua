-- RetryBudget shared by the fleet. Times: the server's TIME, microseconds.
--
-- KEYS[1]  window hash: fields d<slot> (requests), w<slot> (retries), and the floor's
--          token bucket: tokens (x 1e6) and at (when they were counted)
-- ARGV: op, deposits, refunds, ratio, min_per_second, window_us, slots
-- op: flush (add deposits and refunds) | withdraw (the same, then take one retry)
-- Returns {allowed (0/1), requests, retries} over the window, after the op.
local K = KEYS[1]
local op = ARGV[1]
local dep, refunds = tonumber(ARGV[2]), tonumber(ARGV[3])
local ratio, floor = tonumber(ARGV[4]), tonumber(ARGV[5])
local window, slots = tonumber(ARGV[6]), tonumber(ARGV[7])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local width = math.floor(window / slots)
local cur = math.floor(now / width)
local slot = string.format('%.0f', cur)

if dep > 0 then redis.call('HINCRBY', K, 'd' .. slot, dep) end
local requests, retries = 0, 0
local all = redis.call('HGETALL', K)
for i = 1, #all, 2 do
  local field, n = all[i], tonumber(all[i + 1])
  local kind = string.sub(field, 1, 1)
  if kind == 'd' or kind == 'w' then
    if tonumber(string.sub(field, 2)) <= cur - slots then
      redis.call('HDEL', K, field)
    elseif kind == 'd' then
      requests = requests + n
    else
      retries = retries + n
    end
  end
end
refunds = math.min(refunds, retries)
if refunds > 0 then
  redis.call('HINCRBY', K, 'w' .. slot, -refunds)
  retries = retries - refunds
end
local allowed = 0
if op == 'withdraw' then
  if retries + 1 <= ratio * requests + 1e-9 then
    redis.call('HINCRBY', K, 'w' .. slot, 1)
    retries = retries + 1
    allowed = 1
  elseif floor > 0 then
    local b = redis.call('HMGET', K, 'tokens', 'at')
    local tokens = tonumber(b[1] or '-1')
    local at = tonumber(b[2] or '0')
    if tokens < 0 then tokens = floor * 1000000 end
    tokens = math.min(floor * 1000000, tokens + (now - at) * floor)
    if tokens >= 1000000 then
      tokens = tokens - 1000000
      allowed = 1
    end
    redis.call('HSET', K, 'tokens', string.format('%.0f', tokens), 'at', string.format('%.0f', now))
  end
end
redis.call('PEXPIRE', K, math.ceil((window + width) / 1000) + 1000)
return {allowed, requests, retries}
