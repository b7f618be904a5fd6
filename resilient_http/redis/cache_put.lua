-- Cache: store one variant of a key, and end this process's flight for it.
-- KEYS[1] the key's hash (one field per variant), KEYS[2] the flight's lock.
-- ARGV[1] the variant's field ('' = store nothing: the flight ended without a response to
-- share), ARGV[2] the encoded entry, ARGV[3] the TTL the entry needs (ms), ARGV[4] the field
-- of the entry it replaces ('' = none), ARGV[5] our lock token ('' = we hold no lock),
-- ARGV[6] how long the "landed" mark lives (ms).
-- The key's TTL only grows: it covers the longest-lived variant in it.
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  if ARGV[4] ~= '' and ARGV[4] ~= ARGV[1] then
    redis.call('HDEL', KEYS[1], ARGV[4])
  end
  local ttl = tonumber(ARGV[3])
  if redis.call('PTTL', KEYS[1]) < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end
-- Our lock (and only ours: it may have expired and been taken since) becomes "landed":
-- the processes waiting for it read the hash once more instead of going upstream.
if ARGV[5] ~= '' and redis.call('GET', KEYS[2]) == ARGV[5] then
  redis.call('SET', KEYS[2], '=', 'PX', ARGV[6])
end
return 1
