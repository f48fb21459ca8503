"""The Redis Lua scripts of token-pick. `hybrid.tokens.picker` documents the key layout and the
rules; this module only holds the sources.

Times are integer milliseconds from Redis `TIME` unless ARGV[1] is a positive override (only a
picker built for tests passes one). Numbers go back to Redis through `string.format('%.0f')`:
Lua's default `%.14g` would round larger values. Replies are single strings: one bulk reply
costs the client far less to parse than an array. Cost of a pick (measured by `bench/tokens.py`):
each `redis.call` is about 1.5 us, so a pick reads only the tokens it draws and a token's
outcome, risk and cooldown live in one hash read with one HMGET.
"""

from __future__ import annotations

LEASE_GRACE_MS = 600_000
COOLDOWN_AFTER_2_MS = 5 * 60_000
COOLDOWN_AFTER_3_MS = 30 * 60_000
SUSPEND_AFTER = 5
RISK_WINDOW = 20
LATENCY_REFERENCE_MS = 2_000
MAX_LEASE_MS = 600_000
# A pick trims the chosen token's day log and reaps its long-expired leases with this
# probability (counts never depend on it: every window is a ZCOUNT from now); memory stays
# bounded by the limits plus a few dozen stale entries.
TRIM_PROBABILITY = 0.05
# A token's selection code: status x 10^7 + tier x 10^4 + weight (tier and weight <= 1000).
STATUS_FACTOR = 10_000_000
TIER_FACTOR = 10_000

_CLOCK = """
if redis.replicate_commands then redis.replicate_commands() end
local now = tonumber(ARGV[1])
if not now or now <= 0 then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
end
local function n(x) return string.format('%.0f', x) end
local MINUTE, HOUR, DAY = 60000, 3600000, 86400000
local prefix = string.sub(KEYS[1], 1, -4)
"""


def _constants(source: str) -> str:
    values = {
        "GRACE_MS": LEASE_GRACE_MS,
        "COOL2_MS": COOLDOWN_AFTER_2_MS,
        "COOL3_MS": COOLDOWN_AFTER_3_MS,
        "SUSPEND_AFTER": SUSPEND_AFTER,
        "RISK_WINDOW": RISK_WINDOW,
        "LATENCY_REF_MS": LATENCY_REFERENCE_MS,
        "STATUS_FACTOR": STATUS_FACTOR,
        "TIER_FACTOR": TIER_FACTOR,
        "MAX_LEASE_MS": MAX_LEASE_MS,
        "TRIM_PROBABILITY": TRIM_PROBABILITY,
    }
    for name, value in values.items():
        source = source.replace(f"@{name}@", str(value))
    return source


# KEYS: <prefix>cfg. ARGV: now override, lease member, lease ms, random seed. Returns one string
# (a single reply to parse): "L <lease expiry> <now> <token id> <sealed secret>" | "X <earliest
# recovery or -1> <now>" | "N" when the pool's configuration is not in Redis.
PICK = _constants(
    _CLOCK
    + """
local rot = redis.call('HMGET', prefix .. 'rot', 't', 'n')
local last, streak = rot[1], tonumber(rot[2]) or 0
local head = redis.call('HMGET', KEYS[1], '_v', last or '_v', '_tiers')
if not head[1] or not head[3] then return 'N' end
local member, lease_ms = ARGV[2], tonumber(ARGV[3])
math.randomseed(tonumber(ARGV[4]))
local earliest = -1
local function later(at)
  if earliest < 0 or at < earliest then earliest = at end
end
local function limits(id, raw)
  raw = raw or redis.call('HGET', KEYS[1], id)
  if not raw then return nil end
  local rpm, rph, rpd, conc, rotate = string.match(raw, '^(%d+) (%d+) (%d+) (%d+) (%d+)$')
  if not rotate then return nil end
  return {tonumber(rpm), tonumber(rph), tonumber(rpd), tonumber(conc), tonumber(rotate)}
end
local held = nil
if last and streak > 0 then
  local l = limits(last, head[2])
  if l and l[5] > 0 and streak >= l[5] then held = last end
end

-- A token's weight for this pick (its listed weight x max(0.1, 1 - risk)), or false when it
-- cannot serve now: suspended, cooling down (its recovery counts) or held for rotation. Read
-- once per token and pick.
local seen = {}
local function weight(id, listed)
  local known = seen[id]
  if known ~= nil then return known end
  local w = false
  if id ~= held then
    local state = redis.call('HMGET', prefix .. 'out:' .. id, 'c', 'r')
    local cool = tonumber(state[1] or '0')
    local cause = cool % 10
    cool = (cool - cause) / 10
    if cause ~= 3 then
      if cool > now then
        later(cool)
      else
        w = listed * math.max(0.1, 1 - tonumber(state[2] or '0'))
      end
    end
  end
  seen[id] = w
  return w
end

-- When a window that holds `count` >= `limit` entries first holds fewer than `limit`.
local function free_at(key, count, limit, width)
  local e = redis.call('ZRANGEBYSCORE', key, '(' .. n(now - width), '+inf', 'WITHSCORES',
                       'LIMIT', count - limit, 1)
  return tonumber(e[2]) + width
end

local function try(id)
  local l = limits(id)
  if not l then return nil end
  local log, lease = prefix .. 'log:' .. id, prefix .. 'lease:' .. id
  if math.random() < @TRIM_PROBABILITY@ then
    redis.call('ZREMRANGEBYSCORE', log, '-inf', n(now - DAY))
    redis.call('ZREMRANGEBYSCORE', lease, '-inf', '(' .. n(now - @GRACE_MS@))
  end
  -- The windows end now and nest (minute <= hour <= day), so a wider count below a narrower
  -- limit settles that limit without counting its window.
  local ready = now
  local day = redis.call('ZCOUNT', log, '(' .. n(now - DAY), '+inf')
  if day >= l[3] then ready = math.max(ready, free_at(log, day, l[3], DAY)) end
  local hour = day
  if day >= l[2] then
    hour = redis.call('ZCOUNT', log, '(' .. n(now - HOUR), '+inf')
    if hour >= l[2] then ready = math.max(ready, free_at(log, hour, l[2], HOUR)) end
  end
  if hour >= l[1] then
    local minute = redis.call('ZCOUNT', log, '(' .. n(now - MINUTE), '+inf')
    if minute >= l[1] then ready = math.max(ready, free_at(log, minute, l[1], MINUTE)) end
  end
  local busy = redis.call('ZCOUNT', lease, '(' .. n(now), '+inf')
  if busy >= l[4] then
    local e = redis.call('ZRANGEBYSCORE', lease, '(' .. n(now), '+inf', 'WITHSCORES',
                         'LIMIT', busy - l[4], 1)
    ready = math.max(ready, tonumber(e[2]))
  end
  if ready > now then
    later(ready)
    return nil
  end
  local sealed = redis.call('HGET', prefix .. 'sec', id)
  if not sealed then return nil end
  local expires = now + lease_ms
  redis.call('ZADD', log, n(now), member)
  redis.call('PEXPIRE', log, DAY + MINUTE)
  redis.call('ZADD', lease, n(expires), member)
  redis.call('PEXPIRE', lease, @MAX_LEASE_MS@ + @GRACE_MS@ + MINUTE)
  if id == last then streak = streak + 1 else streak = 1 end
  redis.call('HSET', prefix .. 'rot', 't', id, 'n', streak)
  return 'L ' .. n(expires) .. ' ' .. n(now) .. ' ' .. id .. ' ' .. sealed
end

-- The exact weighted choice over `group` (members whose `weight` is known and not false),
-- trying the next one when the chosen token is limited.
local function choose(group)
  while #group > 0 do
    local total = 0
    for _, id in ipairs(group) do total = total + seen[id] end
    local r, index = math.random() * total, #group
    for i, id in ipairs(group) do
      r = r - seen[id]
      if r < 0 then
        index = i
        break
      end
    end
    local picked = try(table.remove(group, index))
    if picked then return picked end
  end
  return nil
end

-- The same choice inside one tier by rejection sampling, so that a pick reads a few tokens
-- instead of the whole pool: draw an entry ("weight id") of the tier's list uniformly and take
-- it with probability weight / the tier's largest weight, deciding on the listed weight before
-- reading the token's state; a token that cannot serve, or was tried and is limited, is out.
-- Each token is still chosen in proportion to its weight among those left. When the draws run
-- out (very uneven weights, most tokens out), `choose` settles the rest exactly.
local function pick_in(tier, largest, count)
  local key, out, left = prefix .. 'tier:' .. tier, {}, count
  for _ = 1, 8 * count + 16 do
    if left == 0 then return nil end
    local entry = redis.call('LINDEX', key, math.random(count) - 1)
    if not entry then break end
    if not out[entry] then
      local u = math.random() * largest
      local listed, id = string.match(entry, '^(%d+) (.+)$')
      if u < tonumber(listed) then
        local w = weight(id, tonumber(listed))
        if not w then
          out[entry], left = true, left - 1
        elseif u < w then
          local picked = try(id)
          if picked then return picked end
          out[entry], left = true, left - 1
        end
      end
    end
  end
  local group = {}
  for _, entry in ipairs(redis.call('LRANGE', key, 0, -1)) do
    if not out[entry] then
      local listed, id = string.match(entry, '^(%d+) (.+)$')
      if weight(id, tonumber(listed)) then group[#group + 1] = id end
    end
  end
  return choose(group)
end

-- `_tiers`: "tier:largest weight:tokens" of every tier with an active token, lowest first.
for tier, largest, count in string.gmatch(head[3], '(%d+):(%d+):(%d+)') do
  local picked = pick_in(tier, tonumber(largest), tonumber(count))
  if picked then return picked end
end
if held then
  local id = held
  local code = tonumber(redis.call('HGET', prefix .. 'sel', id) or '')
  held, seen[id] = nil, nil
  if code and code < @STATUS_FACTOR@ and weight(id, code % @TIER_FACTOR@) then
    local picked = try(id)
    if picked then return picked end
  end
end
return 'X ' .. n(earliest) .. ' ' .. n(now)
"""
)

# KEYS: <prefix>cfg. ARGV: now override, token id, lease member, outcome (s|f|r), latency ms,
# cooldown ms asked by the upstream (rate_limited).
# Returns "0" for an unknown, repeated or long-expired lease; else "1 <consecutive failures>
# <cooldown until> <cause after> <cause before> <risk x 10000>".
RELEASE = _constants(
    _CLOCK
    + """
local id, member, outcome = ARGV[2], ARGV[3], ARGV[4]
local lease = prefix .. 'lease:' .. id
local expires = tonumber(redis.call('ZSCORE', lease, member))
if not expires then return '0' end
redis.call('ZREM', lease, member)
if expires < now - @GRACE_MS@ then return '0' end
local out = prefix .. 'out:' .. id
local st = redis.call('HMGET', out, 'w', 'f', 'l', 'c')
local window = (st[1] or '') .. outcome
if #window > @RISK_WINDOW@ then window = string.sub(window, -@RISK_WINDOW@) end
local fails = 0
if outcome ~= 's' then fails = (tonumber(st[2]) or 0) + 1 end
local latency = tonumber(ARGV[5])
local ewma = tonumber(st[3])
if ewma then ewma = ewma + 0.2 * (latency - ewma) else ewma = latency end
local _, errors = string.gsub(window, '[fr]', '')
local risk = 0.7 * errors / #window + 0.3 * math.min(1, ewma / @LATENCY_REF_MS@)
risk = math.floor(risk * 10000 + 0.5) / 10000
local coded = tonumber(st[4] or '0')
local cause = coded % 10
local cool = (coded - cause) / 10
local before = cause
if cause ~= 3 then
  if fails >= @SUSPEND_AFTER@ then
    cool, cause = 0, 3
  else
    local until_, why = 0, 0
    if fails >= 3 then
      until_, why = now + @COOL3_MS@, 1
    elseif fails >= 2 then
      until_, why = now + @COOL2_MS@, 1
    end
    if outcome == 'r' and now + tonumber(ARGV[6]) > until_ then
      until_, why = now + tonumber(ARGV[6]), 2
    end
    if until_ > cool then cool, cause = until_, why end
  end
end
local fields = {'w', window, 'f', fails, 'l', string.format('%.3f', ewma),
                'r', string.format('%.4f', risk)}
if cool * 10 + cause ~= coded then
  fields[#fields + 1], fields[#fields + 2] = 'c', n(cool * 10 + cause)
end
redis.call('HSET', out, unpack(fields))
return table.concat({1, fails, n(cool), cause, before, n(math.floor(risk * 10000 + 0.5))}, ' ')
"""
)

# KEYS: <prefix>cfg. ARGV: version, then per token: id, limits ("rpm rph rpd concurrency
# rotate_after"), selection code, sealed secret, cooldown until (0: none). Replaces the pool's
# configuration unless Redis holds a newer version; seeds a cooldown only where Redis has no
# state of its own (after a flush). Returns 1, or 0 if stale.
SYNC = _constants("""
local prefix = string.sub(KEYS[1], 1, -4)
local head = redis.call('HMGET', KEYS[1], '_v', '_tiers')
if tonumber(ARGV[1]) < tonumber(head[1] or '-1') then return 0 end
local stale = {KEYS[1], prefix .. 'sel', prefix .. 'sec'}
for tier in string.gmatch(head[2] or '', '(%d+):') do
  stale[#stale + 1] = prefix .. 'tier:' .. tier
end
redis.call('DEL', unpack(stale))
redis.call('HSET', KEYS[1], '_v', ARGV[1])
local largest, count, order = {}, {}, {}
for i = 2, #ARGV, 5 do
  local id, code = ARGV[i], tonumber(ARGV[i + 2])
  redis.call('HSET', KEYS[1], id, ARGV[i + 1])
  redis.call('HSET', prefix .. 'sel', id, ARGV[i + 2])
  redis.call('HSET', prefix .. 'sec', id, ARGV[i + 3])
  if ARGV[i + 4] ~= '0' then
    local coded = string.format('%.0f', tonumber(ARGV[i + 4]) * 10 + 1)
    redis.call('HSETNX', prefix .. 'out:' .. id, 'c', coded)
  end
  if code < @STATUS_FACTOR@ then
    local tier, w = math.floor(code / @TIER_FACTOR@), code % @TIER_FACTOR@
    if not largest[tier] then
      largest[tier], count[tier] = w, 0
      order[#order + 1] = tier
    elseif w > largest[tier] then
      largest[tier] = w
    end
    count[tier] = count[tier] + 1
    redis.call('RPUSH', prefix .. 'tier:' .. tier, w .. ' ' .. id)
  end
end
table.sort(order)
local tiers = {}
for _, tier in ipairs(order) do
  tiers[#tiers + 1] = string.format('%d:%d:%d', tier, largest[tier], count[tier])
end
redis.call('HSET', KEYS[1], '_tiers', table.concat(tiers, ' '))
return 1
""")

# KEYS: <prefix>cfg. ARGV: token id. An operator or a passed health check re-enables a token:
# its cooldown, suspension, failure count, risk and outcome window start afresh.
RESET = """
local prefix = string.sub(KEYS[1], 1, -4)
redis.call('DEL', prefix .. 'out:' .. ARGV[1])
return 1
"""

# KEYS: <prefix>cfg. ARGV: now override, token ids... Returns {now, then per token: picks in the
# last minute, hour, day, leases held, cooldown until, cause, risk x 10000, failures}.
STATS = (
    _CLOCK
    + """
local out = {now}
for i = 2, #ARGV do
  local id = ARGV[i]
  local log, lease = prefix .. 'log:' .. id, prefix .. 'lease:' .. id
  out[#out + 1] = redis.call('ZCOUNT', log, '(' .. n(now - MINUTE), '+inf')
  out[#out + 1] = redis.call('ZCOUNT', log, '(' .. n(now - HOUR), '+inf')
  out[#out + 1] = redis.call('ZCOUNT', log, '(' .. n(now - DAY), '+inf')
  out[#out + 1] = redis.call('ZCOUNT', lease, '(' .. n(now), '+inf')
  local state = redis.call('HMGET', prefix .. 'out:' .. id, 'c', 'r', 'f')
  local coded = tonumber(state[1] or '0')
  local cause = coded % 10
  out[#out + 1] = (coded - cause) / 10
  out[#out + 1] = cause
  out[#out + 1] = math.floor(tonumber(state[2] or '0') * 10000 + 0.5)
  out[#out + 1] = tonumber(state[3] or '0')
end
return out
"""
)
