-- KEYS: 1 the fast queue of a pool. ARGV: 1 entry, 2 quarantine ms.
-- Appends `entry|ready_ms` (`entry` is ARGV 1, `address|id`; ready_ms 0 without quarantine).
local q = tonumber(ARGV[2])
local ready = 0
if q > 0 then
  local t = redis.call('TIME')
  ready = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + q
end
return redis.call('RPUSH', KEYS[1], ARGV[1] .. '|' .. ready)
