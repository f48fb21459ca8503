"""Per-tenant (and per-key) rate limits: GCRA in one Redis Lua script, with a conservative
per-instance fallback while Redis is unavailable.

GCRA (the generic cell rate algorithm) keeps one number per limit, the theoretical arrival time
(TAT). A limit of `per_minute` requests has an emission interval T = 60 s / per_minute and a
burst B (default: per_minute): from idle, B requests pass at once, then one every T; over any
window of W seconds at most B + W / T requests pass. The script reads the clock with Redis
`TIME` (never the client's), evaluates every limit of a call and consumes from all of them only
if all allow it, atomically. Keys are `rl:{<tenant>}:<name>[:<partition>]`: the hash tag puts
all of a tenant's limits in one Redis Cluster slot, as one script call requires.

When Redis cannot be reached, each instance enforces every limit divided by an assumed number
of instances (default 10), logs a warning at most once a minute, and tries Redis again after a
few seconds. `check` never raises because Redis is down.

`Decision.headers()` renders the IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-
headers-11, structured-field lists):
    RateLimit-Policy: "tenant";q=600;w=60
    RateLimit: "tenant";r=599;t=1
where q is the quota per window w, r what is available now and t the seconds until one more
unit becomes available (so Retry-After, when denied, is never earlier than t).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hybrid import log
from hybrid.cache import CacheError, LuaScript, load_script

WINDOW_S = 60
DEFAULT_ASSUMED_INSTANCES = 10
DEFAULT_REDIS_RETRY_S = 5.0
DEGRADED_LOG_INTERVAL_S = 60.0
DEGRADED_MESSAGE = "rate limiting degraded to per-instance limits"
KEY_PREFIX = "rl"
_US = 1_000_000
_LOCAL_MAX_ENTRIES = 10_000

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")

# KEYS: one per limit. ARGV[1]: cost; then per limit: emission interval (µs), burst.
# Returns {allowed, then per limit: remaining, µs until one more unit, µs until `cost` fits}.
GCRA_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local cost = tonumber(ARGV[1])
local tats, intervals, taus, waits = {}, {}, {}, {}
local allowed = 1
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i])
  local tau = interval * tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if tat < now then tat = now end
  local wait = tat + cost * interval - tau - now
  if wait > 0 then allowed = 0 else wait = 0 end
  tats[i], intervals[i], taus[i], waits[i] = tat, interval, tau, wait
end
local out = {allowed}
for i = 1, #KEYS do
  local tat = tats[i]
  if allowed == 1 and cost > 0 then
    tat = tat + cost * intervals[i]
    redis.call('SET', KEYS[i], string.format('%.0f', tat),
               'PX', math.ceil((tat - now) / 1000) + 1)
  end
  local remaining = math.floor((now + taus[i] - tat) / intervals[i] + 1e-6)
  if remaining < 0 then remaining = 0 end
  out[#out + 1] = remaining
  out[#out + 1] = math.ceil(tat - taus[i] + (remaining + 1) * intervals[i] - now)
  out[#out + 1] = math.ceil(waits[i])
end
return out
"""


@dataclass(frozen=True)
class Limit:
    """`per_minute` requests (quota units) per minute, `burst` at once (default per_minute).

    `name` is the policy name shown in the headers; `partition` separates counters that share
    a policy (e.g. the API key id for a per-key limit) without appearing in the headers.
    """

    name: str
    per_minute: int
    burst: int | None = None
    partition: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError("limit name must be 1-64 characters of [A-Za-z0-9_.:-]")
        if self.per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        if self.burst is not None and self.burst < 1:
            raise ValueError("burst must be at least 1")
        if self.partition is not None and not _printable(self.partition, 200):
            raise ValueError("partition must be 1-200 printable ASCII characters")

    @property
    def capacity(self) -> int:
        return self.burst if self.burst is not None else self.per_minute


@dataclass(frozen=True)
class LimitState:
    """One limit after a check: quota per window, remaining now, seconds to the next unit."""

    name: str
    quota: int
    remaining: int
    reset_s: int
    window_s: int = WINDOW_S


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: int
    limits: list[LimitState]
    degraded: bool = False
    """True when the per-instance fallback decided (Redis unavailable)."""

    def headers(self) -> dict[str, str]:
        """`RateLimit-Policy` and `RateLimit` (and `Retry-After` when denied)."""
        headers: dict[str, str] = {}
        if self.limits:
            headers["RateLimit-Policy"] = ", ".join(
                f"{_sf_string(s.name)};q={s.quota};w={s.window_s}" for s in self.limits
            )
            headers["RateLimit"] = ", ".join(
                f"{_sf_string(s.name)};r={s.remaining};t={s.reset_s}" for s in self.limits
            )
        if not self.allowed:
            headers["Retry-After"] = str(max(1, self.retry_after_s))
        return headers


class RateLimiter:
    """Checks limits through Redis; one instance per process (its fallback keeps state)."""

    def __init__(
        self,
        redis_client_factory: Callable[[], Any],
        *,
        assumed_instances: int = DEFAULT_ASSUMED_INSTANCES,
        redis_retry_s: float = DEFAULT_REDIS_RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if assumed_instances < 1:
            raise ValueError("assumed_instances must be at least 1")
        self._factory = redis_client_factory
        self._clock = clock
        self._redis_retry_s = redis_retry_s
        self._local = LocalRateLimiter(assumed_instances, clock=clock)
        self._lock = threading.Lock()
        self._script: tuple[Any, LuaScript] | None = None
        self._redis_down_until: float | None = None
        self._last_warning: float | None = None
        self._logger = log.get_logger("hybrid.ratelimit")

    def check(self, tenant_id: str, limits: Sequence[Limit], cost: int = 1) -> Decision:
        """Consume `cost` from every limit if all of them allow it; nothing otherwise."""
        keys = _keys(tenant_id, limits, cost)
        if not limits:
            return Decision(True, 0, [])
        if self._redis_allowed():
            try:
                decision = self._check_redis(keys, limits, cost)
            except Exception as exc:
                if not _is_redis_failure(exc):
                    raise
                self._redis_failed(exc)
            else:
                self._redis_ok()
                return decision
        return self._local.check(keys, limits, cost)

    def _check_redis(self, keys: list[str], limits: Sequence[Limit], cost: int) -> Decision:
        args: list[Any] = [cost]
        for limit in limits:
            args += [repr(WINDOW_S * _US / limit.per_minute), limit.capacity]
        reply = self._gcra()(keys=keys, args=args)
        allowed = int(reply[0]) == 1
        states: list[LimitState] = []
        retry = 0
        for index, limit in enumerate(limits):
            remaining, next_us, wait_us = (int(v) for v in reply[1 + 3 * index : 4 + 3 * index])
            states.append(LimitState(limit.name, limit.per_minute, remaining, _ceil_s(next_us)))
            retry = max(retry, _ceil_s(wait_us))
        return Decision(allowed, 0 if allowed else max(1, retry), states)

    def _gcra(self) -> LuaScript:
        client = self._factory()
        cached = self._script
        if cached is None or cached[0] is not client:
            cached = self._script = (client, load_script(client, GCRA_SCRIPT))
        return cached[1]

    def _redis_allowed(self) -> bool:
        with self._lock:
            return self._redis_down_until is None or self._clock() >= self._redis_down_until

    def _redis_failed(self, exc: Exception) -> None:
        now = self._clock()
        with self._lock:
            self._redis_down_until = now + self._redis_retry_s
            warn = self._last_warning is None or now - self._last_warning >= DEGRADED_LOG_INTERVAL_S
            if warn:
                self._last_warning = now
        if warn:
            self._logger.warning(DEGRADED_MESSAGE, error_type=type(exc).__name__)

    def _redis_ok(self) -> None:
        with self._lock:
            if self._redis_down_until is None:
                return
            self._redis_down_until = None
        self._logger.info("rate limiting uses redis again")


class LocalRateLimiter:
    """The same GCRA in process memory, each limit divided by `instances`; thread-safe."""

    def __init__(self, instances: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._instances = instances
        self._clock = clock
        self._tats: dict[str, float] = {}
        self._lock = threading.Lock()

    def local_limit(self, limit: Limit) -> tuple[int, int]:
        """(per_minute, burst) this instance enforces for `limit`."""
        return (
            max(1, limit.per_minute // self._instances),
            max(1, limit.capacity // self._instances),
        )

    def check(self, keys: Sequence[str], limits: Sequence[Limit], cost: int) -> Decision:
        with self._lock:
            now = self._clock()
            self._evict(now)
            plans = []
            allowed = True
            for key, limit in zip(keys, limits, strict=True):
                per_minute, burst = self.local_limit(limit)
                interval = WINDOW_S / per_minute
                tau = interval * burst
                # A cost above the reduced burst could never pass: it needs a full bucket.
                charged = min(cost, burst)
                tat = max(self._tats.get(key, now), now)
                wait = tat + charged * interval - tau - now
                if wait > 0:
                    allowed = False
                plans.append((key, limit.name, per_minute, interval, tau, tat, charged, wait))
            states: list[LimitState] = []
            retry = 0
            for key, name, per_minute, interval, tau, tat, charged, wait in plans:
                if allowed and charged > 0:
                    tat += charged * interval
                    self._tats[key] = tat
                remaining = max(0, math.floor((now + tau - tat) / interval + 1e-9))
                next_s = tat - tau + (remaining + 1) * interval - now
                states.append(LimitState(name, per_minute, remaining, max(0, math.ceil(next_s))))
                if wait > 0:
                    retry = max(retry, math.ceil(wait))
        return Decision(allowed, 0 if allowed else max(1, retry), states, degraded=True)

    def _evict(self, now: float) -> None:
        if len(self._tats) > _LOCAL_MAX_ENTRIES:
            for key in [k for k, tat in self._tats.items() if tat <= now]:
                del self._tats[key]


def _keys(tenant_id: str, limits: Sequence[Limit], cost: int) -> list[str]:
    if not _printable(tenant_id, 200) or "{" in tenant_id or "}" in tenant_id:
        raise ValueError("tenant_id must be printable ASCII without braces")
    if cost < 0:
        raise ValueError("cost must not be negative")
    keys = []
    for limit in limits:
        if cost > limit.capacity:
            raise ValueError(f"cost {cost} exceeds the burst of limit {limit.name!r}")
        suffix = f":{limit.partition}" if limit.partition is not None else ""
        keys.append(f"{KEY_PREFIX}:{{{tenant_id}}}:{limit.name}{suffix}")
    if len(set(keys)) != len(keys):
        raise ValueError("limits must have distinct names (or partitions)")
    return keys


def _is_redis_failure(exc: Exception) -> bool:
    """Redis unreachable, timing out or failing: anything the fallback should cover."""
    if isinstance(exc, (CacheError, OSError)):
        return True
    try:
        from redis import exceptions
    except ImportError:  # pragma: no cover - redis-py is a layer dependency
        return False
    return isinstance(exc, exceptions.RedisError)


def _ceil_s(microseconds: int) -> int:
    return max(0, -(-microseconds // _US))


def _printable(value: str, max_length: int) -> bool:
    return 1 <= len(value) <= max_length and all(" " <= ch <= "~" for ch in value)


def _sf_string(value: str) -> str:
    """An RFC 9651 sf-string (names are validated ASCII; escape the two special characters)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
