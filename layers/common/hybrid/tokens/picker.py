"""The Redis half of token-pick: one Lua script per pick and per release, atomic, on Redis time.

Limits (per token). RPM, RPH and RPD are **sliding-window logs**: every pick adds its lease
member to one sorted set per token scored by the pick time, trimmed to the last day; the counts
of the last minute, hour and day are `ZCOUNT`s of the same set, so no window of 60 s, 3,600 s or
86,400 s ending at any moment ever holds more picks than its limit (exact, no boundary burst;
memory is at most RPD entries per token). Concurrency is a sorted set of leases scored by their
expiry: expired leases stop counting at once (a caller that dies frees its slot), and are reaped
a grace period later so that a late release still records its outcome once.

Choice. Lower tier first; inside a tier a weighted random choice (weight x max(0.1, 1 - risk)),
trying the next candidate when the chosen one is limited. The choice is drawn by rejection sampling
over the tier's list of active tokens (exact; a pick reads the few tokens it draws, not the whole
pool), with an exact pass over the rest when the draws run out. A token picked `rotate_after` times
in a row is passed over while any other token can serve (then it may serve again).

Outcomes. A release records success, failure or rate_limited in a window of the last N outcomes
and an EWMA of the latency; risk = 0.7 x error share + 0.3 x min(1, latency / reference).
Failures and rate_limited count as consecutive failures (a success resets them): 2 cool the
token down 5 min, 3 (or more) 30 min, 5 suspend it until an operator or the health check
re-enables it. rate_limited also cools it down for the upstream's Retry-After (default 60 s).
Cooldowns never shorten.

Keys, all hash-tagged with the pool so one script touches one cluster slot (the scripts get
the `cfg` key and derive the others from its tagged prefix, so they share that slot):
    tp:{pool}:cfg           hash  _v -> config version; _tiers -> "tier:largest weight:tokens
                                   ..." of the tiers with an active token, lowest first;
                                   token -> "rpm rph rpd concurrency rotate_after"
    tp:{pool}:tier:<tier>   list  "weight token" per active token of the tier (written with
                                   the config)
    tp:{pool}:sel           hash  token -> status x 10^7 + tier x 10^4 + weight (status 0 active,
                                   1 paused, 2 suspended)
    tp:{pool}:sec           hash  token -> sealed secret (AES-GCM, as in PostgreSQL)
    tp:{pool}:rot           hash  t -> last token, n -> consecutive picks of it
    tp:{pool}:log:<token>   zset  pick member -> pick time (ms)
    tp:{pool}:lease:<token> zset  lease member -> expiry (ms)
    tp:{pool}:out:<token>   hash  w -> outcome window, f -> consecutive failures, l -> EWMA ms,
                                   r -> risk (0..1), c -> cooldown_until x 10 + cause
                                   (1 failures, 2 Retry-After, 3 suspended)

A pool whose `cfg` hash is missing (Redis flushed or restarted) or has no `_tiers` (written by an
older release) makes the pick script answer "no config": `hybrid.tokens.leasing` reloads it from
PostgreSQL and picks again. A token only exists for the script with all four limits, so no token is
ever handed out unlimited. Redis must not evict these keys (`maxmemory-policy noeviction`): the
usage logs are the limits' memory.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hybrid.cache import LuaScript, load_script, redis_errors
from hybrid.tokens import scripts
from hybrid.tokens.scripts import (
    COOLDOWN_AFTER_2_MS,
    COOLDOWN_AFTER_3_MS,
    LATENCY_REFERENCE_MS,
    LEASE_GRACE_MS,
    MAX_LEASE_MS,
    RISK_WINDOW,
    STATUS_FACTOR,
    SUSPEND_AFTER,
    TIER_FACTOR,
)

__all__ = [
    "COOLDOWN_AFTER_2_MS",
    "COOLDOWN_AFTER_3_MS",
    "LATENCY_REFERENCE_MS",
    "LEASE_GRACE_MS",
    "MAX_LEASE_MS",
    "RATE_LIMITED_DEFAULT_S",
    "RISK_WINDOW",
    "SUSPEND_AFTER",
    "Exhausted",
    "LeaseRef",
    "Leased",
    "NotLoaded",
    "Released",
    "TokenConfig",
    "TokenPicker",
    "TokenUsage",
    "pool_prefix",
]

KEY_PREFIX = "tp"
RATE_LIMITED_DEFAULT_S = 60
MAX_TIER = 1000
MAX_WEIGHT = 1000

STATUS_CODES = {"active": 0, "paused": 1, "suspended": 2}
OUTCOME_CODES = {"success": "s", "failure": "f", "rate_limited": "r"}
CAUSES = {0: None, 1: "failures", 2: "retry_after", 3: "suspended"}

Outcome = Literal["success", "failure", "rate_limited"]


def pool_prefix(pool: str) -> str:
    return f"{KEY_PREFIX}:{{{pool}}}:"


@dataclass(frozen=True)
class TokenConfig:
    """What the pick script needs to know about a token."""

    id: str
    status: str
    tier: int
    weight: int
    rpm: int
    rph: int
    rpd: int
    concurrency: int
    rotate_after: int
    sealed_secret: bytes
    cooldown_until_ms: int = 0

    def limits(self) -> str:
        """The limits as the pick script reads them: "rpm rph rpd concurrency rotate_after"."""
        for name in ("rpm", "rph", "rpd", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.rotate_after < 0:
            raise ValueError("rotate_after must not be negative")
        return f"{self.rpm} {self.rph} {self.rpd} {self.concurrency} {self.rotate_after}"

    def selection(self) -> int:
        """Status, tier and weight in one integer, so the pick loop needs no parsing."""
        if not 0 <= self.tier <= MAX_TIER or not 1 <= self.weight <= MAX_WEIGHT:
            raise ValueError(f"tier must be 0-{MAX_TIER} and weight 1-{MAX_WEIGHT}")
        return STATUS_CODES[self.status] * STATUS_FACTOR + self.tier * TIER_FACTOR + self.weight


@dataclass(frozen=True)
class Leased:
    token_id: str
    lease_id: str
    sealed_secret: bytes
    expires_at_ms: int
    now_ms: int


@dataclass(frozen=True)
class Exhausted:
    """No token can serve now; `recovery_ms` is when the first one can (None: none will by
    itself, every token is paused or suspended, or the pool is empty)."""

    recovery_ms: int | None
    now_ms: int


@dataclass(frozen=True)
class NotLoaded:
    """The pool's configuration is not in Redis."""


@dataclass(frozen=True)
class Released:
    recorded: bool
    consecutive_failures: int = 0
    cooldown_until_ms: int = 0
    cause: str | None = None
    previous_cause: str | None = None
    risk: float = 0.0

    @property
    def suspended_now(self) -> bool:
        return self.cause == "suspended" and self.previous_cause != "suspended"


@dataclass(frozen=True)
class TokenUsage:
    minute: int
    hour: int
    day: int
    leases: int
    cooldown_until_ms: int
    cause: str | None
    risk: float
    consecutive_failures: int


@dataclass(frozen=True)
class LeaseRef:
    """A lease id, `<pool>:<token id>:<member>`, taken apart."""

    pool: str
    token_id: str
    member: str

    @property
    def lease_id(self) -> str:
        return f"{self.pool}:{self.token_id}:{self.member}"

    @classmethod
    def parse(cls, lease_id: str) -> LeaseRef | None:
        parts = lease_id.split(":")
        if len(parts) != 3 or not all(parts):
            return None
        return cls(*parts)


class TokenPicker:
    """The scripts bound to a Redis client factory. `clock_ms` replaces Redis `TIME` and exists
    for tests only: nothing in the function's composition ever passes it."""

    def __init__(
        self, redis: Callable[[], Any], *, clock_ms: Callable[[], int] | None = None
    ) -> None:
        self._redis = redis
        self._clock_ms = clock_ms
        self._scripts: dict[str, tuple[Any, LuaScript]] = {}

    def pick(self, pool: str, *, lease_ms: int) -> Leased | Exhausted | NotLoaded:
        if not 1 <= lease_ms <= MAX_LEASE_MS:
            raise ValueError(f"lease_ms must be 1-{MAX_LEASE_MS}")
        prefix = pool_prefix(pool)
        member = secrets.token_hex(12)
        reply = self._script("pick", scripts.PICK)(
            keys=[prefix + "cfg"],
            args=[self._now_arg(), member, lease_ms, random.getrandbits(31)],
        )
        kind = reply[:1]
        if kind == b"L":
            _kind, expires, now, token, sealed = reply.split(b" ", 4)
            token_id = token.decode()
            return Leased(
                token_id=token_id,
                lease_id=f"{pool}:{token_id}:{member}",
                sealed_secret=sealed,
                expires_at_ms=int(expires),
                now_ms=int(now),
            )
        if kind == b"X":
            _kind, recovery, now = reply.split(b" ")
            return Exhausted(int(recovery) if recovery != b"-1" else None, int(now))
        return NotLoaded()

    def release(
        self,
        lease: LeaseRef,
        outcome: Outcome,
        *,
        latency_ms: float,
        retry_after_s: int | None = None,
    ) -> Released:
        prefix = pool_prefix(lease.pool)
        retry_s = retry_after_s if retry_after_s is not None else RATE_LIMITED_DEFAULT_S
        reply = self._script("release", scripts.RELEASE)(
            keys=[prefix + "cfg"],
            args=[
                self._now_arg(),
                lease.token_id,
                lease.member,
                OUTCOME_CODES[outcome],
                repr(float(latency_ms)),
                retry_s * 1000,
            ],
        )
        if reply == b"0":
            return Released(recorded=False)
        _recorded, fails, cool, cause, before, risk = reply.split(b" ")
        return Released(
            recorded=True,
            consecutive_failures=int(fails),
            cooldown_until_ms=int(cool),
            cause=CAUSES.get(int(cause)),
            previous_cause=CAUSES.get(int(before)),
            risk=int(risk) / 10_000,
        )

    def load(self, pool: str, version: int, tokens: Sequence[TokenConfig]) -> bool:
        """Replace the pool's configuration in Redis; False when Redis already holds a newer
        version (a concurrent writer got there first)."""
        prefix = pool_prefix(pool)
        args: list[Any] = [version]
        for token in tokens:
            args += [
                token.id,
                token.limits(),
                token.selection(),
                token.sealed_secret,
                token.cooldown_until_ms,
            ]
        reply = self._script("sync", scripts.SYNC)(keys=[prefix + "cfg"], args=args)
        return bool(int(reply))

    def loaded_version(self, pool: str) -> int | None:
        with redis_errors():
            value = self._redis().hget(pool_prefix(pool) + "cfg", "_v")
        return int(value) if value is not None else None

    def reset(self, pool: str, token_id: str) -> None:
        """Forget the token's cooldown, suspension, failures and outcome window."""
        prefix = pool_prefix(pool)
        self._script("reset", scripts.RESET)(keys=[prefix + "cfg"], args=[token_id])

    def usage(self, pool: str, token_ids: Sequence[str]) -> tuple[int, dict[str, TokenUsage]]:
        """Redis time (ms) and each token's live usage, cooldown and risk."""
        if not token_ids:
            return 0, {}
        prefix = pool_prefix(pool)
        reply = self._script("stats", scripts.STATS)(
            keys=[prefix + "cfg"], args=[self._now_arg(), *token_ids]
        )
        now = int(reply[0])
        found = {}
        for index, token_id in enumerate(token_ids):
            values = [int(v) for v in reply[1 + 8 * index : 9 + 8 * index]]
            found[token_id] = TokenUsage(
                minute=values[0],
                hour=values[1],
                day=values[2],
                leases=values[3],
                cooldown_until_ms=values[4],
                cause=CAUSES.get(values[5]),
                risk=values[6] / 10_000,
                consecutive_failures=values[7],
            )
        return now, found

    def _now_arg(self) -> int:
        return self._clock_ms() if self._clock_ms is not None else 0

    def _script(self, name: str, source: str) -> LuaScript:
        client = self._redis()
        cached = self._scripts.get(name)
        if cached is None or cached[0] is not client:
            with redis_errors():
                cached = self._scripts[name] = (client, load_script(client, source))
        return cached[1]
