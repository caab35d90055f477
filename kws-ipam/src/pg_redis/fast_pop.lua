-- KEYS: 1 the fast queue of a pool. Pops the front `entry|ready_ms` when it is ready
-- (`entry` is `address|id`, or `address`).
-- Returns the address, or false when the queue is empty or its front is in quarantine.
local front = redis.call('LINDEX', KEYS[1], 0)
if not front then return false end
local addr, ready = string.match(front, '^(.+)|(%d+)$')
if ready ~= '0' then
  local t = redis.call('TIME')
  if tonumber(ready) > tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then
    return false
  end
end
redis.call('LPOP', KEYS[1])
return addr
