-- Cache: claim the fetch of a missing key for this process, or learn how the fleet's
-- fetch of it is doing.
-- KEYS[1] the key's hash, KEYS[2] the flight's lock. ARGV[1] our token, ARGV[2] the lock's
-- TTL (ms): a process that dies holding the lock blocks the key at most that long.
-- Returns {1} claimed (we fetch), {0} another process fetches (wait and ask again),
-- {2, fields...} that fetch landed: the hash as HGETALL returns it.
local held = redis.call('GET', KEYS[2])
if not held then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return {1}
end
if held == '=' then
  return {2, redis.call('HGETALL', KEYS[1])}
end
return {0}
