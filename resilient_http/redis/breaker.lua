-- One circuit of CircuitBreaker shared by the fleet. Times: the server's TIME, microseconds.
--
-- KEYS[1]  state hash: st ('c' closed, 'o' open, 'i' isolated), until (end of the break),
--          gen (the period: the server time it began; outcomes of another period are dropped)
-- KEYS[2]  window hash: fields t<bucket> (outcomes) and f<bucket> (failures)
-- KEYS[3..] probe slots, one key per half-open probe allowed (SET NX PX)
-- ARGV: op, gen, ok, fail, failure_ratio, min_throughput, window_us, buckets, break_us,
--       token, probe_ttl_ms, hold_ms
-- op: sync (add outcomes, open on the ratio) | probe (take a slot if half-open) |
--     probe_ok | probe_fail | probe_abort (end a probe) | isolate | reset
-- Returns {st, remaining_us (of the break), gen, failed, total, acquired}.
local S, W = KEYS[1], KEYS[2]
local op, gen = ARGV[1], ARGV[2]
local ok, fail = tonumber(ARGV[3]), tonumber(ARGV[4])
local ratio, least = tonumber(ARGV[5]), tonumber(ARGV[6])
local window, buckets, brk = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local token, probe_ttl, hold = ARGV[10], tonumber(ARGV[11]), tonumber(ARGV[12])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local width = math.floor(window / buckets)
local cur = math.floor(now / width)
local slot = string.format('%.0f', cur)
local keep = math.ceil((window + brk) / 1000)  -- ms a closed or open state is kept

local s = redis.call('HMGET', S, 'st', 'until', 'gen')
local st, untl, sgen = s[1] or 'c', tonumber(s[2] or '0'), s[3] or '0'

local function set_state(new_st, new_until, ttl_ms)
  st, untl, sgen = new_st, new_until, string.format('%.0f', now)
  redis.call('HSET', S, 'st', st, 'until', string.format('%.0f', untl), 'gen', sgen)
  redis.call('PEXPIRE', S, ttl_ms)
  redis.call('DEL', W)
end

local function release()
  for i = 3, #KEYS do
    if redis.call('GET', KEYS[i]) == token then redis.call('DEL', KEYS[i]) end
  end
end

local failed, total, acquired = 0, 0, 0
if op == 'sync' and st == 'c' then
  if sgen == gen and ok + fail > 0 then
    redis.call('HINCRBY', W, 't' .. slot, ok + fail)
    if fail > 0 then redis.call('HINCRBY', W, 'f' .. slot, fail) end
    redis.call('PEXPIRE', W, math.ceil((window + width) / 1000))
  end
  local all = redis.call('HGETALL', W)
  for i = 1, #all, 2 do
    local field, n = all[i], tonumber(all[i + 1])
    if tonumber(string.sub(field, 2)) <= cur - buckets then
      redis.call('HDEL', W, field)
    elseif string.sub(field, 1, 1) == 't' then
      total = total + n
    else
      failed = failed + n
    end
  end
  if sgen == gen and fail > 0 and total >= least and failed >= ratio * total then
    set_state('o', now + brk, keep)
  end
elseif op == 'probe' then
  if st == 'o' and now >= untl then
    for i = 3, #KEYS do
      if redis.call('SET', KEYS[i], token, 'NX', 'PX', probe_ttl) then
        acquired = i - 2
        break
      end
    end
  end
elseif op == 'probe_ok' or op == 'probe_fail' or op == 'probe_abort' then
  release()
  if st == 'o' and now >= untl and sgen == gen then
    if op == 'probe_ok' then
      set_state('c', 0, keep)
    elseif op == 'probe_fail' then
      set_state('o', now + brk, keep)
    end
  end
elseif op == 'isolate' then
  set_state('i', 0, hold)
elseif op == 'reset' then
  set_state('c', 0, keep)
end
if st == 'i' then redis.call('PEXPIRE', S, hold) end
local remaining = 0
if st == 'o' then remaining = untl - now end
return {st, remaining, sgen, failed, total, acquired}
