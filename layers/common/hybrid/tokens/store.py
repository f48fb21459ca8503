"""Pools and tokens in PostgreSQL, the record of configuration and status. Secrets are sealed
with the secret box, bound to the token id; no function here returns one except
`token_secret` (for the health probe) and `pool_config` (sealed, for Redis).

Every change to a pool's tokens bumps the pool's `version` in the same transaction, so a
configuration written to Redis is never replaced by an older one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hybrid.auth import new_id
from hybrid.crypto import SecretBox
from hybrid.db import IntegrityError, Transaction
from hybrid.errors import ValidationFailedError
from hybrid.tokens.errors import PoolNotFoundError, TokenExistsError, TokenNotFoundError
from hybrid.tokens.picker import TokenConfig

TOKEN_STATUSES = ("active", "paused", "suspended")


@dataclass(frozen=True)
class Pool:
    name: str
    health_url: str | None
    alert_tenant_id: str | None
    version: int

    def to_public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "health_url": self.health_url,
            "alert_tenant_id": self.alert_tenant_id,
            "version": self.version,
        }


@dataclass(frozen=True)
class Token:
    """A token without its secret."""

    id: str
    pool: str
    name: str
    status: str
    status_reason: str | None
    tier: int
    weight: int
    rpm: int
    rph: int
    rpd: int
    concurrency: int
    rotate_after: int
    cooldown_until: datetime | None
    created_at: datetime
    updated_at: datetime

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pool": self.pool,
            "name": self.name,
            "status": self.status,
            "status_reason": self.status_reason,
            "tier": self.tier,
            "weight": self.weight,
            "limits": {
                "rpm": self.rpm,
                "rph": self.rph,
                "rpd": self.rpd,
                "concurrency": self.concurrency,
            },
            "rotate_after": self.rotate_after,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


# The columns of Token and Pool, in their field order.
_COLUMNS = (
    "id, pool, name, status, status_reason, tier, weight, rpm, rph, rpd, concurrency, "
    "rotate_after, cooldown_until, created_at, updated_at"
)
_POOL_COLUMNS = "name, health_url, alert_tenant_id, version"


def put_pool(
    tx: Transaction,
    name: str,
    *,
    health_url: str | None = None,
    alert_tenant_id: str | None = None,
    update: bool = False,
) -> Pool:
    """Create the pool if needed; with `update`, set its health URL and alert tenant."""
    try:
        row = _upsert_pool(tx, name, health_url, alert_tenant_id, update)
    except IntegrityError as exc:
        if exc.constraint == "token_pools_alert_tenant_id_fkey":
            raise ValidationFailedError("alert_tenant_id: no such tenant") from None
        raise
    assert row is not None
    return Pool(**row)


def _upsert_pool(
    tx: Transaction,
    name: str,
    health_url: str | None,
    alert_tenant_id: str | None,
    update: bool,
) -> dict[str, Any] | None:
    return tx.one(
        "INSERT INTO token_pools (name, health_url, alert_tenant_id) "
        "VALUES (:name, :health_url, :tenant) ON CONFLICT (name) DO UPDATE SET "
        "health_url = CASE WHEN :update THEN EXCLUDED.health_url ELSE token_pools.health_url END, "
        "alert_tenant_id = CASE WHEN :update THEN EXCLUDED.alert_tenant_id "
        "ELSE token_pools.alert_tenant_id END, "
        "version = token_pools.version + CASE WHEN :update THEN 1 ELSE 0 END, "
        "updated_at = now() "
        f"RETURNING {_POOL_COLUMNS}",
        name=name,
        health_url=health_url,
        tenant=alert_tenant_id,
        update=update,
    )


def get_pool(tx: Transaction, name: str) -> Pool:
    row = tx.one(
        f"SELECT {_POOL_COLUMNS} FROM token_pools WHERE name = :name",
        name=name,
    )
    if row is None:
        raise PoolNotFoundError()
    return Pool(**row)


def list_pools(tx: Transaction) -> list[Pool]:
    rows = tx.rows(f"SELECT {_POOL_COLUMNS} FROM token_pools ORDER BY name")
    return [Pool(**row) for row in rows]


def create_token(
    tx: Transaction,
    box: SecretBox,
    *,
    pool: str,
    name: str,
    secret: str,
    rpm: int,
    rph: int,
    rpd: int,
    concurrency: int,
    rotate_after: int,
    tier: int,
    weight: int,
) -> Token:
    put_pool(tx, pool)
    token_id = new_id("tok")
    try:
        row = tx.one(
            f"INSERT INTO tokens (id, pool, name, secret_sealed, rpm, rph, rpd, concurrency, "
            f"rotate_after, tier, weight) VALUES (:id, :pool, :name, :sealed, :rpm, :rph, :rpd, "
            f":concurrency, :rotate_after, :tier, :weight) RETURNING {_COLUMNS}",
            id=token_id,
            pool=pool,
            name=name,
            sealed=box.seal(secret, owner=token_id),
            rpm=rpm,
            rph=rph,
            rpd=rpd,
            concurrency=concurrency,
            rotate_after=rotate_after,
            tier=tier,
            weight=weight,
        )
    except IntegrityError as exc:
        if exc.constraint == "tokens_pool_name_key":
            raise TokenExistsError() from None
        raise
    _bump(tx, pool)
    assert row is not None
    return Token(**row)


def list_tokens(tx: Transaction, pool: str | None = None) -> list[Token]:
    rows = tx.rows(
        f"SELECT {_COLUMNS} FROM tokens WHERE CAST(:pool AS text) IS NULL OR pool = :pool "
        "ORDER BY pool, tier, name, id",
        pool=pool,
    )
    return [Token(**row) for row in rows]


def get_token(tx: Transaction, token_id: str, *, for_update: bool = False) -> Token:
    lock = " FOR UPDATE" if for_update else ""
    row = tx.one(f"SELECT {_COLUMNS} FROM tokens WHERE id = :id{lock}", id=token_id)
    if row is None:
        raise TokenNotFoundError()
    return Token(**row)


def set_status(
    tx: Transaction,
    token_id: str,
    status: str,
    *,
    reason: str | None,
    only_from: tuple[str, ...] | None = None,
) -> tuple[Token, bool]:
    """Move the token to `status` (from one of `only_from`, when given); the token and whether
    it changed. A cooldown recorded earlier ends when the token is re-enabled."""
    if status not in TOKEN_STATUSES:
        raise ValueError(f"unknown status {status!r}")
    before = get_token(tx, token_id, for_update=True)
    if before.status == status or (only_from is not None and before.status not in only_from):
        return before, False
    row = tx.one(
        f"UPDATE tokens SET status = :status, status_reason = :reason, updated_at = now(), "
        f"cooldown_until = CASE WHEN :status = 'active' THEN NULL ELSE cooldown_until END "
        f"WHERE id = :id RETURNING {_COLUMNS}",
        id=token_id,
        status=status,
        reason=reason,
    )
    assert row is not None
    _bump(tx, before.pool)
    return Token(**row), True


def set_cooldown(tx: Transaction, token_id: str, until: datetime) -> None:
    """Remember a cooldown (so that Redis can be given it back after a flush); never shortens."""
    tx.execute(
        "UPDATE tokens SET cooldown_until = :until "
        "WHERE id = :id AND (cooldown_until IS NULL OR cooldown_until < :until)",
        id=token_id,
        until=until,
    )


def clear_cooldown(tx: Transaction, token_id: str) -> None:
    tx.execute("UPDATE tokens SET cooldown_until = NULL WHERE id = :id", id=token_id)


def pool_config(tx: Transaction, pool: str) -> tuple[Pool, list[TokenConfig]]:
    """The pool and its tokens as the pick script needs them (secrets still sealed)."""
    found = get_pool(tx, pool)
    rows = tx.rows(
        "SELECT id, status, tier, weight, rpm, rph, rpd, concurrency, rotate_after, "
        "secret_sealed, cooldown_until FROM tokens WHERE pool = :pool ORDER BY id",
        pool=pool,
    )
    return found, [
        TokenConfig(
            id=row["id"],
            status=row["status"],
            tier=row["tier"],
            weight=row["weight"],
            rpm=row["rpm"],
            rph=row["rph"],
            rpd=row["rpd"],
            concurrency=row["concurrency"],
            rotate_after=row["rotate_after"],
            sealed_secret=bytes(row["secret_sealed"]),
            cooldown_until_ms=(
                int(row["cooldown_until"].timestamp() * 1000) if row["cooldown_until"] else 0
            ),
        )
        for row in rows
    ]


def token_secret(tx: Transaction, box: SecretBox, token_id: str) -> str:
    sealed = tx.scalar("SELECT secret_sealed FROM tokens WHERE id = :id", id=token_id)
    if sealed is None:
        raise TokenNotFoundError()
    return box.open(bytes(sealed), owner=token_id)


def _bump(tx: Transaction, pool: str) -> None:
    tx.execute(
        "UPDATE token_pools SET version = version + 1, updated_at = now() WHERE name = :pool",
        pool=pool,
    )
