"""Operator actions on pools and tokens: PostgreSQL first (the record), then the pool's
configuration pushed to Redis. A failed push raises (503): the caller retries, every action is
idempotent, and the health tick re-pushes any pool whose Redis copy is behind."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from hybrid import audit
from hybrid.tokens import store
from hybrid.tokens.leasing import sync_pool
from hybrid.tokens.picker import TokenUsage
from hybrid.tokens.status import change_status

ACTOR = "internal"


def add_token(services: Any, *, request_id: str, **fields: Any) -> dict[str, Any]:
    """Store a token (its secret sealed) and publish its pool's configuration."""
    with services.write() as tx:
        token = store.create_token(tx, services.secret_box, **fields)
        audit.record(
            tx,
            tenant_id=None,
            actor=ACTOR,
            action="token.create",
            target_type="token",
            target_id=token.id,
            request_id=request_id,
            details={"pool": token.pool, "name": token.name},
        )
    sync_pool(services, token.pool)
    return token.to_public()


def put_pool(
    services: Any, name: str, *, health_url: str | None, alert_tenant_id: str | None
) -> dict[str, Any]:
    with services.write() as tx:
        pool = store.put_pool(
            tx, name, health_url=health_url, alert_tenant_id=alert_tenant_id, update=True
        )
    sync_pool(services, name)
    return pool.to_public()


def list_tokens(services: Any, pool: str | None) -> list[dict[str, Any]]:
    """Every token (never its secret) with its live usage, risk and cooldown from Redis."""
    with services.read() as tx:
        tokens = store.list_tokens(tx, pool)
    by_pool: dict[str, list[store.Token]] = {}
    for token in tokens:
        by_pool.setdefault(token.pool, []).append(token)
    views: list[dict[str, Any]] = []
    for pool_name, members in by_pool.items():
        now_ms, usage = services.picker.usage(pool_name, [t.id for t in members])
        views.extend(_view(token, usage[token.id], now_ms) for token in members)
    return views


def set_enabled(services: Any, token_id: str, *, enabled: bool, request_id: str) -> dict[str, Any]:
    """Pause a token, or re-enable a paused or suspended one (its cooldown, failures and risk
    window start afresh)."""
    with services.write() as tx:
        if enabled:
            token, _ = change_status(
                tx, token_id, "active", reason=None, actor=ACTOR, request_id=request_id
            )
            store.clear_cooldown(tx, token_id)
        else:
            token, _ = change_status(
                tx,
                token_id,
                "paused",
                reason="paused by an operator",
                actor=ACTOR,
                request_id=request_id,
            )
    if enabled:
        services.picker.reset(token.pool, token.id)
    sync_pool(services, token.pool)
    return token.to_public()


def pause_high_risk(
    services: Any, *, threshold: float, pool: str | None, request_id: str
) -> list[dict[str, Any]]:
    """Pause every active token whose risk is at least `threshold`; the paused tokens."""
    with services.read() as tx:
        tokens = [t for t in store.list_tokens(tx, pool) if t.status == "active"]
    risky: list[tuple[store.Token, float]] = []
    pools = sorted({t.pool for t in tokens})
    for pool_name in pools:
        members = [t for t in tokens if t.pool == pool_name]
        _now, usage = services.picker.usage(pool_name, [t.id for t in members])
        risky += [(t, usage[t.id].risk) for t in members if usage[t.id].risk >= threshold]
    paused = []
    for token, risk in risky:
        with services.write() as tx:
            updated, changed = change_status(
                tx,
                token.id,
                "paused",
                reason=f"risk {risk:.2f} at or above {threshold:.2f}",
                actor=ACTOR,
                request_id=request_id,
                only_from=("active",),
            )
        if changed:
            paused.append(updated.to_public() | {"risk": risk})
    for pool_name in sorted({t["pool"] for t in paused}):
        sync_pool(services, pool_name)
    return paused


def _view(token: store.Token, usage: TokenUsage, now_ms: int) -> dict[str, Any]:
    cooling = usage.cooldown_until_ms > now_ms and usage.cause != "suspended"
    status = token.status
    if status == "active" and usage.cause == "suspended":
        status = "suspended"  # suspended in Redis; PostgreSQL catches up on the next tick
    return token.to_public() | {
        "status": status,
        "risk": usage.risk,
        "consecutive_failures": usage.consecutive_failures,
        "usage": {
            "minute": usage.minute,
            "hour": usage.hour,
            "day": usage.day,
            "leases": usage.leases,
        },
        "cooldown_until": (
            datetime.fromtimestamp(usage.cooldown_until_ms / 1000, tz=timezone.utc)
            if cooling
            else None
        ),
    }
