"""The connectors a tenant runs on-prem, their sources, and their secrets.

The secret signs both directions (Standard Webhooks), so the cloud must be able to read it back:
it is stored sealed (AES-GCM), shown once at creation and never listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hybrid.auth.keys import new_id
from hybrid.crypto import SecretBox
from hybrid.db import IntegrityError, Transaction
from hybrid.errors import ResourceExistsError, ResourceNotFoundError
from hybrid.webhooks import new_webhook_secret


class ConnectorNotFoundError(ResourceNotFoundError):
    def __init__(self) -> None:
        super().__init__("connector not found")


class ConnectorNameTakenError(ResourceExistsError):
    def __init__(self) -> None:
        super().__init__("a connector with this name already exists")


@dataclass(frozen=True)
class Source:
    name: str
    engine: str
    description: str | None = None

    def to_public(self) -> dict[str, Any]:
        return {"name": self.name, "engine": self.engine, "description": self.description}


@dataclass(frozen=True)
class Connector:
    id: str
    tenant_id: str
    name: str
    transport: str
    endpoint: str | None
    sources: tuple[Source, ...]
    created_at: datetime

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "transport": self.transport,
            "endpoint": self.endpoint,
            "sources": [source.to_public() for source in self.sources],
            "created_at": self.created_at,
        }


def create_connector(
    tx: Transaction,
    box: SecretBox,
    *,
    tenant_id: str,
    name: str,
    transport: str,
    endpoint: str | None,
    sources: Sequence[Source],
) -> tuple[Connector, str]:
    """The new connector and its secret (to be shown once)."""
    connector_id = new_id("con")
    # Connectors sign both directions the Standard Webhooks way: the same kind of secret.
    secret = new_webhook_secret()
    try:
        row = tx.one(
            "INSERT INTO connectors (id, tenant_id, name, transport, endpoint, secret_ciphertext) "
            "VALUES (:id, :tenant_id, :name, :transport, :endpoint, :sealed) "
            "RETURNING created_at",
            id=connector_id,
            tenant_id=tenant_id,
            name=name,
            transport=transport,
            endpoint=endpoint,
            sealed=box.seal(secret, owner=connector_id),
        )
    except IntegrityError as exc:
        if exc.constraint == "connectors_tenant_name":
            raise ConnectorNameTakenError() from None
        raise
    assert row is not None
    for source in sources:
        tx.execute(
            "INSERT INTO connector_sources (connector_id, name, engine, description) "
            "VALUES (:connector_id, :name, :engine, :description)",
            connector_id=connector_id,
            name=source.name,
            engine=source.engine,
            description=source.description,
        )
    connector = Connector(
        id=connector_id,
        tenant_id=tenant_id,
        name=name,
        transport=transport,
        endpoint=endpoint,
        sources=tuple(sources),
        created_at=row["created_at"],
    )
    return connector, secret


def get_connector(tx: Transaction, connector_id: str, *, tenant_id: str | None) -> Connector:
    found = _select(tx, connector_id=connector_id, tenant_id=tenant_id)
    if not found:
        raise ConnectorNotFoundError()
    return found[0]


def list_connectors(tx: Transaction, *, tenant_id: str | None) -> list[Connector]:
    return _select(tx, connector_id=None, tenant_id=tenant_id)


def delete_connector(tx: Transaction, connector_id: str, *, tenant_id: str | None) -> Connector:
    connector = get_connector(tx, connector_id, tenant_id=tenant_id)
    tx.execute("UPDATE connectors SET deleted_at = now() WHERE id = :id", id=connector_id)
    return connector


def connector_secret(tx: Transaction, box: SecretBox, connector_id: str) -> str:
    """The plaintext secret, for signing and verifying; never returned by an API."""
    row = tx.one(
        "SELECT secret_ciphertext FROM connectors WHERE id = :id AND deleted_at IS NULL",
        id=connector_id,
    )
    if row is None:
        raise ConnectorNotFoundError()
    return box.open(bytes(row["secret_ciphertext"]), owner=connector_id)


def _select(tx: Transaction, *, connector_id: str | None, tenant_id: str | None) -> list[Connector]:
    rows = tx.rows(
        "SELECT c.id, c.tenant_id, c.name, c.transport, c.endpoint, c.created_at, "
        "COALESCE(json_agg(json_build_object('name', s.name, 'engine', s.engine, "
        "'description', s.description) ORDER BY s.name) FILTER (WHERE s.name IS NOT NULL), "
        "'[]') AS sources "
        "FROM connectors c LEFT JOIN connector_sources s ON s.connector_id = c.id "
        "WHERE c.deleted_at IS NULL "
        "AND (CAST(:connector_id AS text) IS NULL OR c.id = :connector_id) "
        "AND (CAST(:tenant_id AS text) IS NULL OR c.tenant_id = :tenant_id) "
        "GROUP BY c.id ORDER BY c.created_at, c.id",
        connector_id=connector_id,
        tenant_id=tenant_id,
    )
    return [
        Connector(
            id=row["id"],
            tenant_id=row["tenant_id"],
            name=row["name"],
            transport=row["transport"],
            endpoint=row["endpoint"],
            sources=tuple(Source(**source) for source in row["sources"]),
            created_at=row["created_at"],
        )
        for row in rows
    ]
