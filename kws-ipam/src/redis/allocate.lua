-- ARGV: 1 owner. Returns {'held', host} | {'new', host} | {'exhausted'} | {'nopool'}.
if redis.call('EXISTS', meta) == 0 then return {'nopool'} end
local owner = ARGV[1]
local held = redis.call('HGET', owners, owner)
if held then return {'held', held} end
-- Oldest released first, skipping entries taken out of order, stopping at quarantine.
local now = nil
while true do
  local front = redis.call('LINDEX', queue, 0)
  if not front then break end
  local host, seq, ready = string.match(front, '^(%x+)|(%d+)|(%d+)$')
  if redis.call('HGET', queued, host) ~= seq then
    redis.call('LPOP', queue)
  else
    if ready ~= '0' then
      now = now or now_ms()
      if tonumber(ready) > now then break end
    end
    redis.call('LPOP', queue)
    redis.call('HDEL', queued, host)
    lease(host, owner)
    return {'new', host}
  end
end
-- Fresh from the cursor, skipping what allocate_specific took ahead of it.
local nseg = tonumber(redis.call('HGET', meta, 'nseg'))
local cur = redis.call('HMGET', meta, 'cseg', 'cnext')
local cseg, cnext = tonumber(cur[1]), cur[2]
while cseg <= nseg do
  local host = cnext
  local seg = redis.call('LINDEX', segs, cseg - 1)
  if host == string.sub(seg, 34, 65) then
    cseg = cseg + 1
    if cseg <= nseg then cnext = string.sub(redis.call('LINDEX', segs, cseg - 1), 1, 32) end
  else
    cnext = inc(host)
  end
  if redis.call('HEXISTS', leases, host) == 0 and redis.call('HEXISTS', queued, host) == 0 then
    redis.call('HSET', meta, 'cseg', cseg, 'cnext', cnext)
    lease(host, owner)
    return {'new', host}
  end
end
redis.call('HSET', meta, 'cseg', cseg, 'cnext', cnext)
return {'exhausted'}
