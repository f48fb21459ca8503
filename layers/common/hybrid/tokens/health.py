"""The minute tick of token-pick, under a Redis leader lease (`hybrid.locks`) so that two
overlapping ticks never probe a token twice:

1. re-push every pool whose Redis configuration is missing or behind PostgreSQL;
2. record in PostgreSQL the suspensions Redis made that a release could not persist;
3. probe (the pool's health URL, the token as bearer) every suspended token and every token
   cooling down after failures: a pass re-enables it (status, cooldown, failures and risk window
   start afresh), a failure leaves it as it is.

The lease is extended before each batch of probes and each re-enable; when it is lost (the tick
stalled past its TTL and another took over) the tick stops.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hybrid import locks, log
from hybrid.tokens import store
from hybrid.tokens.leasing import SUSPENDED_REASON, sync_pool
from hybrid.tokens.probe import ProbeResult, TokenProbe
from hybrid.tokens.status import change_status

logger = log.get_logger("hybrid.tokens.health")

LOCK_NAME = "token-pick-health"
LOCK_MARGIN_MS = 5_000
MAX_LOCK_MS = 120_000
MIN_LOCK_MS = 1_000
PROBE_THREADS = 16
ACTOR = "health-check"


@dataclass(frozen=True)
class _Candidate:
    pool: store.Pool
    token: store.Token
    suspended: bool


def run_health_tick(services: Any, *, remaining_ms: int, probe: TokenProbe) -> dict[str, Any]:
    """One tick; the counts of what it did (or why it skipped)."""
    ttl_ms = min(MAX_LOCK_MS, remaining_ms - LOCK_MARGIN_MS)
    if ttl_ms < MIN_LOCK_MS:
        return {"skipped": "too little time left"}
    lease = locks.acquire(services.redis, LOCK_NAME, ttl_ms)
    if lease is None:
        logger.info("token health tick skipped", reason="another tick holds the lease")
        return {"skipped": "another tick holds the lease"}
    try:
        summary = _tick(services, probe, lease)
    finally:
        lease.release()
    logger.info("token health tick", **summary)
    return summary


def _tick(services: Any, probe: TokenProbe, lease: locks.Lease) -> dict[str, Any]:
    summary = {"pools": 0, "synced": 0, "reconciled": 0, "probed": 0, "enabled": 0, "failed": 0}
    with services.read() as tx:
        pools = store.list_pools(tx)
    summary["pools"] = len(pools)
    candidates: list[_Candidate] = []
    for pool in pools:
        if services.picker.loaded_version(pool.name) != pool.version:
            summary["synced"] += int(sync_pool(services, pool.name))
        candidates += _pool_candidates(services, pool, summary)
    for start in range(0, len(candidates), PROBE_THREADS):
        if not lease.extend():
            logger.warning("token health lease lost; stopping")
            summary["lease_lost"] = True
            break
        batch = candidates[start : start + PROBE_THREADS]
        with ThreadPoolExecutor(len(batch)) as pool_executor:
            results = list(pool_executor.map(lambda c: _probe(services, probe, c), batch))
        summary["probed"] += len(batch)
        for candidate, result in zip(batch, results, strict=True):
            if not result.ok:
                summary["failed"] += 1
                logger.info(
                    "token health check failed",
                    token_id=candidate.token.id,
                    status=result.status,
                    error=result.error,
                )
                continue
            if not lease.extend():
                summary["lease_lost"] = True
                return summary
            _enable(services, candidate)
            summary["enabled"] += 1
    return summary


def _pool_candidates(services: Any, pool: store.Pool, summary: dict[str, Any]) -> list[_Candidate]:
    with services.read() as tx:
        tokens = [t for t in store.list_tokens(tx, pool.name) if t.status != "paused"]
    if not tokens:
        return []
    now_ms, usage = services.picker.usage(pool.name, [t.id for t in tokens])
    found = []
    for token in tokens:
        state = usage[token.id]
        suspended = token.status == "suspended"
        if token.status == "active" and state.cause == "suspended":
            with services.write() as tx:
                _, changed = change_status(
                    tx,
                    token.id,
                    "suspended",
                    reason=SUSPENDED_REASON,
                    actor=ACTOR,
                    only_from=("active",),
                )
            summary["reconciled"] += int(changed)
            suspended = True
        cooling = state.cause == "failures" and state.cooldown_until_ms > now_ms
        if pool.health_url and (suspended or cooling):
            found.append(_Candidate(pool, token, suspended))
    return found


def _probe(services: Any, probe: TokenProbe, candidate: _Candidate) -> ProbeResult:
    assert candidate.pool.health_url is not None
    with services.read() as tx:
        secret = store.token_secret(tx, services.secret_box, candidate.token.id)
    return probe.check(candidate.pool.health_url, secret)


def _enable(services: Any, candidate: _Candidate) -> None:
    token = candidate.token
    with services.write() as tx:
        if candidate.suspended:
            change_status(
                tx,
                token.id,
                "active",
                reason="health check passed",
                actor=ACTOR,
                only_from=("suspended",),
            )
        store.clear_cooldown(tx, token.id)
    services.picker.reset(token.pool, token.id)
    sync_pool(services, token.pool)
