-- KEYS: 1 meta, 2 segs, 3 leases, 4 owners, 5 queue, 6 queued (of the pool), 7 the registry of
-- pools. ARGV: 1 name, 2 range 'f|first|last'
-- (family and absolute hex bounds), 3 quarantine ms, 4 capacity, 5 spec json, 6.. segments
-- 'first last'. Returns {'ok'} | {'exists'} | {'overlap', name, range}.
local meta, segs, leases, owners, queue, queued = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local registry = KEYS[7]
local name, range = ARGV[1], ARGV[2]
if redis.call('HEXISTS', registry, name) == 1 then return {'exists'} end
local fam, first, last = string.match(range, '^(%d)|(%x+)|(%x+)$')
local all = redis.call('HGETALL', registry)
for i = 1, #all, 2 do
  local f2, a2, b2 = string.match(all[i + 1], '^(%d)|(%x+)|(%x+)$')
  if f2 == fam and not (last < a2 or b2 < first) then return {'overlap', all[i], all[i + 1]} end
end
redis.call('DEL', meta, segs, leases, owners, queue, queued)
redis.call('HSET', registry, name, range)
local nseg = #ARGV - 5
for i = 6, #ARGV do redis.call('RPUSH', segs, ARGV[i]) end
redis.call('HSET', meta, 'quarantine', ARGV[3], 'capacity', ARGV[4], 'spec', ARGV[5],
  'nseg', nseg, 'cseg', 1, 'cnext', string.sub(ARGV[6], 1, 32), 'seq', 0, 'allocated', 0)
return {'ok'}
