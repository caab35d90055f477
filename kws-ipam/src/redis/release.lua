-- ARGV: 1 host. Returns {'released', owner} | {'notallocated'} | {'nopool'}.
if redis.call('EXISTS', meta) == 0 then return {'nopool'} end
local host = ARGV[1]
local owner = redis.call('HGET', leases, host)
if not owner then return {'notallocated'} end
redis.call('HDEL', leases, host)
redis.call('HDEL', owners, owner)
redis.call('HINCRBY', meta, 'allocated', -1)
local seq = redis.call('HINCRBY', meta, 'seq', 1)
local q = tonumber(redis.call('HGET', meta, 'quarantine'))
local ready = 0
if q > 0 then ready = now_ms() + q end
redis.call('HSET', queued, host, seq)
redis.call('RPUSH', queue, host .. '|' .. seq .. '|' .. ready)
return {'released', owner}
