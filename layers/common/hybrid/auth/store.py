"""API keys in PostgreSQL: created with a one-time token, looked up by id, revoked at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hybrid.auth.keys import ApiKeyToken, hash_secret, new_api_key
from hybrid.db import Transaction
from hybrid.errors import ResourceNotFoundError


class ApiKeyNotFoundError(ResourceNotFoundError):
    def __init__(self) -> None:
        super().__init__("API key not found")


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
            "active": self.revoked_at is None,
        }


@dataclass(frozen=True)
class KeyCredentials:
    """What authentication needs to know about a presented key."""

    key_id: str
    tenant_id: str
    scopes: frozenset[str]
    secret_sha256: bytes
    revoked: bool
    tenant_active: bool


_COLUMNS = "id, tenant_id, name, scopes, created_at, last_used_at, revoked_at"


def create_api_key(
    tx: Transaction, *, tenant_id: str, name: str, scopes: Sequence[str]
) -> tuple[ApiKey, ApiKeyToken]:
    token = new_api_key()
    row = tx.one(
        f"INSERT INTO api_keys (id, tenant_id, name, scopes, secret_sha256) "
        f"VALUES (:id, :tenant_id, :name, :scopes, :hash) RETURNING {_COLUMNS}",
        id=token.key_id,
        tenant_id=tenant_id,
        name=name,
        scopes=sorted(set(scopes)),
        hash=hash_secret(token.secret),
    )
    assert row is not None
    return _api_key(row), token


def list_api_keys(tx: Transaction, tenant_id: str) -> list[ApiKey]:
    rows = tx.rows(
        f"SELECT {_COLUMNS} FROM api_keys WHERE tenant_id = :tenant_id ORDER BY created_at, id",
        tenant_id=tenant_id,
    )
    return [_api_key(row) for row in rows]


def get_api_key(tx: Transaction, key_id: str, *, tenant_id: str | None) -> ApiKey:
    """The key, if it exists and belongs to `tenant_id` (None: any tenant, for the operator)."""
    row = tx.one(
        f"SELECT {_COLUMNS} FROM api_keys "
        "WHERE id = :id AND (CAST(:tenant_id AS text) IS NULL OR tenant_id = :tenant_id)",
        id=key_id,
        tenant_id=tenant_id,
    )
    if row is None:
        raise ApiKeyNotFoundError()
    return _api_key(row)


def revoke_api_key(tx: Transaction, key_id: str, *, tenant_id: str | None) -> ApiKey:
    """Revoke now; revoking a revoked key is harmless. Unknown or not yours: not found."""
    row = tx.one(
        f"UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) "
        "WHERE id = :id AND (CAST(:tenant_id AS text) IS NULL OR tenant_id = :tenant_id) "
        f"RETURNING {_COLUMNS}",
        id=key_id,
        tenant_id=tenant_id,
    )
    if row is None:
        raise ApiKeyNotFoundError()
    return _api_key(row)


def key_credentials(tx: Transaction, key_id: str) -> KeyCredentials | None:
    row = tx.one(
        "SELECT k.id, k.tenant_id, k.scopes, k.secret_sha256, k.revoked_at, t.status "
        "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = :id",
        id=key_id,
    )
    if row is None:
        return None
    return KeyCredentials(
        key_id=row["id"],
        tenant_id=row["tenant_id"],
        scopes=frozenset(row["scopes"]),
        secret_sha256=bytes(row["secret_sha256"]),
        revoked=row["revoked_at"] is not None,
        tenant_active=row["status"] == "active",
    )


def touch_last_used(tx: Transaction, key_id: str) -> None:
    """At most one write a minute per key, so authentication stays a read in the hot path."""
    tx.execute(
        "UPDATE api_keys SET last_used_at = now() WHERE id = :id "
        "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        id=key_id,
    )


def _api_key(row: dict[str, Any]) -> ApiKey:
    return ApiKey(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        scopes=tuple(row["scopes"]),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )
