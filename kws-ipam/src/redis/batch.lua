-- Runs a batch of operations atomically, each with its own outcome (group commit).
-- Host numbers are 32 lowercase hex digits (128 bits), so string comparison is numeric
-- comparison and Lua's doubles never touch them.
-- KEYS: 6 per pool, pool n at 6(n-1)+1..6n: meta, segs, leases, owners, queue, queued.
-- ARGV: 4 per operation: op, pool number (1-based), host ('' when none), owner ('' when none).
--   'a' allocate owner:        {'held', host} | {'new', host} | {'exhausted', ''} | {'nopool', ''}
--   's' allocate host to owner: {'new', ''} | {'held', holder} (someone holds host)
--                              | {'owner', host} (the owner holds another host) | {'nopool', ''}
--   'r' release host:          {'released', owner} | {'notallocated', ''} | {'nopool', ''}
-- Returns 2 strings per operation, in order.
local HEX = '0123456789abcdef'

local function inc(h)
  for i = 32, 1, -1 do
    local c = string.sub(h, i, i)
    if c ~= 'f' then
      local d = string.find(HEX, c, 1, true)
      return string.sub(h, 1, i - 1) .. string.sub(HEX, d + 1, d + 1) .. string.rep('0', 32 - i)
    end
  end
  return string.rep('0', 32)
end

local now = nil
local function now_ms()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end

-- The state of each pool the batch touches, read once; written back once at the end.
local pools = {}
local function pool(n)
  local p = pools[n]
  if p then return p end
  local b = (n - 1) * 6
  p = { meta = KEYS[b + 1], segs = KEYS[b + 2], leases = KEYS[b + 3], owners = KEYS[b + 4],
        queue = KEYS[b + 5], queued = KEYS[b + 6] }
  local m = redis.call('HMGET', p.meta, 'nseg', 'cseg', 'cnext', 'quarantine', 'seq')
  if not m[1] then
    p.missing = true
  else
    p.nseg, p.cseg, p.cnext = tonumber(m[1]), tonumber(m[2]), m[3]
    p.quarantine, p.seq = tonumber(m[4]), tonumber(m[5])
    p.delta, p.cursor, p.released, p.blocked = 0, false, false, false
  end
  pools[n] = p
  return p
end

local function lease(p, host, owner)
  redis.call('HSET', p.leases, host, owner)
  redis.call('HSET', p.owners, owner, host)
  p.delta = p.delta + 1
end

local function allocate(p, owner)
  local held = redis.call('HGET', p.owners, owner)
  if held then return 'held', held end
  -- Oldest released first, dropping entries taken out of order, stopping at quarantine (no
  -- entry gets ready during the script: `now` is read once).
  while not p.blocked do
    local front = redis.call('LPOP', p.queue)
    if not front then break end
    local host, seq, ready = string.match(front, '^(%x+)|(%d+)|(%d+)$')
    if host and redis.call('HGET', p.queued, host) == seq then
      if ready ~= '0' and tonumber(ready) > now_ms() then
        redis.call('LPUSH', p.queue, front)
        p.blocked = true
      else
        redis.call('HDEL', p.queued, host)
        lease(p, host, owner)
        return 'new', host
      end
    end
  end
  -- Fresh from the cursor, skipping what allocate_specific took ahead of it.
  while p.cseg <= p.nseg do
    if not p.last then p.last = string.sub(redis.call('LINDEX', p.segs, p.cseg - 1), 34, 65) end
    local host = p.cnext
    if host == p.last then
      p.cseg = p.cseg + 1
      p.last = nil
      if p.cseg <= p.nseg then
        p.cnext = string.sub(redis.call('LINDEX', p.segs, p.cseg - 1), 1, 32)
      end
    else
      p.cnext = inc(host)
    end
    p.cursor = true
    if redis.call('HEXISTS', p.leases, host) == 0 and redis.call('HEXISTS', p.queued, host) == 0
    then
      lease(p, host, owner)
      return 'new', host
    end
  end
  return 'exhausted', ''
end

local function allocate_specific(p, host, owner)
  local holder = redis.call('HGET', p.leases, host)
  if holder then return 'held', holder end
  local other = redis.call('HGET', p.owners, owner)
  if other then return 'owner', other end
  redis.call('HDEL', p.queued, host)
  lease(p, host, owner)
  return 'new', ''
end

local function release(p, host)
  local owner = redis.call('HGET', p.leases, host)
  if not owner then return 'notallocated', '' end
  redis.call('HDEL', p.leases, host)
  redis.call('HDEL', p.owners, owner)
  p.delta = p.delta - 1
  p.seq = p.seq + 1
  p.released = true
  local ready = 0
  if p.quarantine > 0 then ready = now_ms() + p.quarantine end
  local seq = string.format('%d', p.seq)
  redis.call('HSET', p.queued, host, seq)
  redis.call('RPUSH', p.queue, host .. '|' .. seq .. '|' .. string.format('%d', ready))
  return 'released', owner
end

-- Checked before the first write: a script that fails half-way keeps what it wrote.
for i = 1, #ARGV, 4 do
  local op, n = ARGV[i], tonumber(ARGV[i + 1])
  if (op ~= 'a' and op ~= 's' and op ~= 'r') or not n or n < 1 or n * 6 > #KEYS then
    return redis.error_reply('bad operation ' .. tostring(op) .. ' on pool ' .. tostring(n))
  end
end

local out = {}
for i = 1, #ARGV, 4 do
  local op, p, host, owner = ARGV[i], pool(tonumber(ARGV[i + 1])), ARGV[i + 2], ARGV[i + 3]
  local kind, value
  if p.missing then
    kind, value = 'nopool', ''
  elseif op == 'a' then
    kind, value = allocate(p, owner)
  elseif op == 's' then
    kind, value = allocate_specific(p, host, owner)
  else
    kind, value = release(p, host)
  end
  out[#out + 1] = kind
  out[#out + 1] = value
end

for _, p in pairs(pools) do
  if not p.missing then
    if p.delta ~= 0 then redis.call('HINCRBY', p.meta, 'allocated', p.delta) end
    if p.cursor then redis.call('HSET', p.meta, 'cseg', p.cseg, 'cnext', p.cnext) end
    if p.released then redis.call('HSET', p.meta, 'seq', string.format('%d', p.seq)) end
  end
end
return out
