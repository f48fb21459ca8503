"""Picking and releasing tokens: the Lua path, the lazy load of a pool's configuration from
PostgreSQL, the bounded wait for the earliest recovery, and recording what a release changed.

Redis unavailable: `CacheUnavailableError` propagates (503 with Retry-After); no token is ever
handed out without the script having counted it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from hybrid import log
from hybrid.cache import CacheUnavailableError
from hybrid.db import DatabaseError
from hybrid.tokens import store
from hybrid.tokens.errors import TokenNotFoundError, TokensExhaustedError
from hybrid.tokens.picker import Exhausted, Leased, LeaseRef, NotLoaded, Outcome, Released
from hybrid.tokens.status import change_status

logger = log.get_logger("hybrid.tokens")

# Told to callers when no token will recover by itself (all paused or suspended): about when
# the next health check may have re-enabled one.
NO_TOKEN_RETRY_S = 60
# Spread of the wake-ups of callers that waited for the same recovery.
WAKE_SPREAD_S = 0.02
MAX_LOADS = 2
SUSPENDED_REASON = "consecutive failures"


@dataclass(frozen=True)
class LeaseGrant:
    lease_id: str
    token_id: str
    secret: str
    lease_expires_at: datetime
    not_before: datetime

    def to_public(self) -> dict[str, Any]:
        return {
            "lease_id": self.lease_id,
            "token_id": self.token_id,
            "secret": self.secret,
            "lease_expires_at": self.lease_expires_at,
            "not_before": self.not_before,
        }


def pick(
    services: Any,
    pool: str,
    *,
    lease_ms: int,
    wait_ms: int = 0,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> LeaseGrant:
    """A lease on one token of `pool`, waiting up to `wait_ms` for the earliest recovery.

    Raises PoolNotFoundError, TokensExhaustedError (429) or CacheUnavailableError (503)."""
    deadline = monotonic() + wait_ms / 1000
    loads = 0
    while True:
        result = services.picker.pick(pool, lease_ms=lease_ms)
        if isinstance(result, Leased):
            return _grant(services, result)
        if isinstance(result, NotLoaded):
            if loads >= MAX_LOADS:
                raise CacheUnavailableError("token pool configuration does not stay in redis")
            loads += 1
            sync_pool(services, pool)
            continue
        _wait_or_raise(result, deadline, sleep, monotonic)


def _wait_or_raise(
    result: Exhausted,
    deadline: float,
    sleep: Callable[[float], None],
    monotonic: Callable[[], float],
) -> None:
    if result.recovery_ms is None:
        raise TokensExhaustedError(
            "no token of the pool is enabled", retry_after_s=NO_TOKEN_RETRY_S
        )
    wait_s = max(0.0, (result.recovery_ms - result.now_ms) / 1000)
    remaining = deadline - monotonic()
    if wait_s > remaining:
        raise TokensExhaustedError(
            "every token of the pool is limited", retry_after_s=max(1, math.ceil(wait_s))
        )
    sleep(min(remaining, wait_s + random.uniform(0, WAKE_SPREAD_S)))


def _grant(services: Any, leased: Leased) -> LeaseGrant:
    settings = services.settings
    secret = services.secret_box.open(leased.sealed_secret, owner=leased.token_id)
    jitter_ms = random.uniform(settings.lease_jitter_min_ms, settings.lease_jitter_max_ms)
    return LeaseGrant(
        lease_id=leased.lease_id,
        token_id=leased.token_id,
        secret=secret,
        lease_expires_at=_time(leased.expires_at_ms),
        not_before=_time(leased.now_ms + jitter_ms),
    )


def release(
    services: Any,
    lease_id: str,
    outcome: Outcome,
    *,
    latency_ms: float,
    retry_after_s: int | None = None,
) -> Released:
    """Record the outcome of a lease; an unknown, repeated or long-expired lease changes
    nothing. A suspension or cooldown is also written to PostgreSQL, best effort: the health
    tick reconciles suspensions that could not be."""
    lease = LeaseRef.parse(lease_id)
    if lease is None:
        return Released(recorded=False)
    result: Released = services.picker.release(
        lease, outcome, latency_ms=latency_ms, retry_after_s=retry_after_s
    )
    if not result.recorded or outcome == "success":
        return result
    try:
        if result.suspended_now:
            with services.write() as tx:
                change_status(
                    tx,
                    lease.token_id,
                    "suspended",
                    reason=SUSPENDED_REASON,
                    actor="token-pick",
                    only_from=("active",),
                )
        elif result.cooldown_until_ms:
            with services.write() as tx:
                store.set_cooldown(tx, lease.token_id, _time(result.cooldown_until_ms))
    except (DatabaseError, TokenNotFoundError) as exc:
        logger.warning(
            "token state not persisted",
            token_id=lease.token_id,
            error_type=type(exc).__name__,
        )
    return result


def sync_pool(services: Any, pool: str) -> bool:
    """Write the pool's configuration from PostgreSQL to Redis (PoolNotFoundError if none)."""
    with services.read() as tx:
        found, tokens = store.pool_config(tx, pool)
    return bool(services.picker.load(pool, found.version, tokens))


def _time(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
