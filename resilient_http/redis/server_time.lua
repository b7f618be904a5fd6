-- The server's clock, the only one the fleet shares: TIME in integer microseconds.
-- No keys, no arguments.
local t = redis.call('TIME')
return tonumber(t[1]) * 1000000 + tonumber(t[2])
