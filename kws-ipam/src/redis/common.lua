-- Shared by every kws-ipam script. Host numbers are 32 lowercase hex digits (128 bits), so
-- string comparison is numeric comparison and Lua's doubles never touch them.
-- KEYS: 1 meta, 2 segs, 3 leases, 4 owners, 5 queue, 6 queued (of one pool).
local meta, segs, leases, owners, queue, queued = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
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

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function lease(host, owner)
  redis.call('HSET', leases, host, owner)
  redis.call('HSET', owners, owner, host)
  redis.call('HINCRBY', meta, 'allocated', 1)
end
