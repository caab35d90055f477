-- ARGV: 1 host, 2 owner. Returns {'new'} | {'held', holder} (someone holds host) |
-- {'owner', host} (the owner holds another host) | {'nopool'}.
if redis.call('EXISTS', meta) == 0 then return {'nopool'} end
local host, owner = ARGV[1], ARGV[2]
local holder = redis.call('HGET', leases, host)
if holder then return {'held', holder} end
local other = redis.call('HGET', owners, owner)
if other then return {'owner', other} end
redis.call('HDEL', queued, host)
lease(host, owner)
return {'new'}
