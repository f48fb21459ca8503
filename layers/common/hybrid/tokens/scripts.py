"""The Redis Lua scripts of token-pick. `hybrid.tokens.picker` documents the key layout and the
rules; this module only holds the sources.

Times are integer milliseconds from Redis `TIME` unless ARGV[1] is a positive override (only a
picker built for tests passes one). Numbers go back to Redis through `string.format('%.0f')`:
Lua's default `%.14g` would round larger values. The pick loop over every token of a pool uses
`tonumber` and arithmetic only (no pattern matching): that loop is the script's cost.
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


# KEYS: <prefix>cfg. ARGV: now override, lease member, lease ms, random seed.
# Returns {1, token id, lease expiry, now, sealed secret} | {0, earliest recovery or -1, now}
# | {-1} when the pool's configuration is not in Redis.
PICK = _constants(
    _CLOCK
    + """
local rot = redis.call('HMGET', prefix .. 'rot', 't', 'n')
local last, streak = rot[1], tonumber(rot[2]) or 0
local head = redis.call('HMGET', KEYS[1], '_v', last or '_v')
if not head[1] then return {-1} end
local member, lease_ms = ARGV[2], tonumber(ARGV[3])
math.randomseed(tonumber(ARGV[4]))
local function hash(key)
  local raw, out = redis.call('HGETALL', prefix .. key), {}
  for i = 1, #raw, 2 do out[raw[i]] = tonumber(raw[i + 1]) end
  return out
end
local sel, cools, risks = hash('sel'), hash('cool'), hash('risk')
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
local tiers, order, weights = {}, {}, {}
for id, code in pairs(sel) do
  if code < @STATUS_FACTOR@ then
    local cool = cools[id] or 0
    local cause = cool % 10
    cool = (cool - cause) / 10
    if cause ~= 3 then
      if cool > now then
        later(cool)
      elseif id ~= held then
        local tier = math.floor(code / @TIER_FACTOR@)
        local group = tiers[tier]
        if not group then
          group = {}
          tiers[tier] = group
          order[#order + 1] = tier
        end
        group[#group + 1] = id
        weights[id] = (code % @TIER_FACTOR@) * math.max(0.1, 1 - (risks[id] or 0))
      end
    end
  end
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
  return {1, id, expires, now, sealed}
end

local function choose(group)
  while #group > 0 do
    local total = 0
    for _, id in ipairs(group) do total = total + weights[id] end
    local r, index = math.random() * total, #group
    for i, id in ipairs(group) do
      r = r - weights[id]
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

table.sort(order)
for _, tier in ipairs(order) do
  local picked = choose(tiers[tier])
  if picked then return picked end
end
if held and (sel[held] or @STATUS_FACTOR@) < @STATUS_FACTOR@ then
  local cool = cools[held] or 0
  local cause = cool % 10
  cool = (cool - cause) / 10
  if cause ~= 3 then
    if cool > now then
      later(cool)
    else
      local picked = try(held)
      if picked then return picked end
    end
  end
end
return {0, earliest, now}
"""
)

# KEYS: <prefix>cfg. ARGV: now override, token id, lease member, outcome (s|f|r), latency ms,
# cooldown ms asked by the upstream (rate_limited).
# Returns {0} for an unknown, repeated or long-expired lease; else
# {1, consecutive failures, cooldown until, cause after, cause before, risk x 10000}.
RELEASE = _constants(
    _CLOCK
    + """
local id, member, outcome = ARGV[2], ARGV[3], ARGV[4]
local lease = prefix .. 'lease:' .. id
local expires = tonumber(redis.call('ZSCORE', lease, member))
if not expires then return {0} end
redis.call('ZREM', lease, member)
if expires < now - @GRACE_MS@ then return {0} end
local out = prefix .. 'out:' .. id
local st = redis.call('HMGET', out, 'w', 'f', 'l')
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
redis.call('HSET', out, 'w', window, 'f', fails, 'l', string.format('%.3f', ewma))
redis.call('HSET', prefix .. 'risk', id, string.format('%.4f', risk))
local coded = tonumber(redis.call('HGET', prefix .. 'cool', id) or '0')
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
if cool * 10 + cause ~= coded then
  redis.call('HSET', prefix .. 'cool', id, n(cool * 10 + cause))
end
return {1, fails, cool, cause, before, math.floor(risk * 10000 + 0.5)}
"""
)

# KEYS: <prefix>cfg. ARGV: version, then per token: id, limits ("rpm rph rpd concurrency
# rotate_after"), selection code, sealed secret, cooldown until (0: none). Replaces the pool's
# configuration unless Redis holds a newer version; seeds a cooldown only where Redis has no
# state of its own (after a flush). Returns 1, or 0 if stale.
SYNC = """
local prefix = string.sub(KEYS[1], 1, -4)
local current = tonumber(redis.call('HGET', KEYS[1], '_v') or '-1')
if tonumber(ARGV[1]) < current then return 0 end
redis.call('DEL', KEYS[1], prefix .. 'sel', prefix .. 'sec')
redis.call('HSET', KEYS[1], '_v', ARGV[1])
for i = 2, #ARGV, 5 do
  local id = ARGV[i]
  redis.call('HSET', KEYS[1], id, ARGV[i + 1])
  redis.call('HSET', prefix .. 'sel', id, ARGV[i + 2])
  redis.call('HSET', prefix .. 'sec', id, ARGV[i + 3])
  if ARGV[i + 4] ~= '0' then
    local coded = string.format('%.0f', tonumber(ARGV[i + 4]) * 10 + 1)
    redis.call('HSETNX', prefix .. 'cool', id, coded)
  end
end
return 1
"""

# KEYS: <prefix>cfg. ARGV: token id. An operator or a passed health check re-enables a token:
# its cooldown, suspension, failure count, risk and outcome window start afresh.
RESET = """
local prefix = string.sub(KEYS[1], 1, -4)
redis.call('HDEL', prefix .. 'cool', ARGV[1])
redis.call('HDEL', prefix .. 'risk', ARGV[1])
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
  local coded = tonumber(redis.call('HGET', prefix .. 'cool', id) or '0')
  local cause = coded % 10
  out[#out + 1] = (coded - cause) / 10
  out[#out + 1] = cause
  local risk = tonumber(redis.call('HGET', prefix .. 'risk', id) or '0')
  out[#out + 1] = math.floor(risk * 10000 + 0.5)
  out[#out + 1] = tonumber(redis.call('HGET', prefix .. 'out:' .. id, 'f') or '0')
end
return out
"""
)
