"""Push receipts: the stored outcome of every push (batch, webhook, file), per tenant."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hybrid.auth.keys import new_id
from hybrid.db import Transaction
from hybrid.errors import ResourceNotFoundError


class ReceiptNotFoundError(ResourceNotFoundError):
    def __init__(self) -> None:
        super().__init__("receipt not found")


@dataclass(frozen=True)
class Receipt:
    id: str
    tenant_id: str
    source: str
    entity: str
    kind: str
    actor: str
    request_id: str | None
    idempotency_key: str | None
    outcome: dict[str, Any]
    archive_key: str | None
    archived_at: datetime | None
    created_at: datetime

    def to_public(self) -> dict[str, Any]:
        return {
            "receipt_id": self.id,
            "source": self.source,
            "entity": self.entity,
            "kind": self.kind,
            "actor": self.actor,
            "request_id": self.request_id,
            "idempotency_key": self.idempotency_key,
            **self.outcome,
            "archived": self.archived_at is not None,
            "created_at": self.created_at,
        }


def new_receipt_id() -> str:
    return new_id("rcp")


def create_receipt(
    tx: Transaction,
    *,
    receipt_id: str,
    tenant_id: str,
    source: str,
    entity: str,
    kind: str,
    actor: str,
    request_id: str | None,
    idempotency_key: str | None,
    outcome: dict[str, Any],
) -> None:
    tx.execute(
        "INSERT INTO push_receipts (id, tenant_id, source, entity, kind, actor, request_id, "
        "idempotency_key, outcome) VALUES (:id, :tenant_id, :source, :entity, :kind, :actor, "
        ":request_id, :idempotency_key, CAST(:outcome AS jsonb)) ON CONFLICT (id) DO NOTHING",
        id=receipt_id,
        tenant_id=tenant_id,
        source=source,
        entity=entity,
        kind=kind,
        actor=actor,
        request_id=request_id,
        idempotency_key=idempotency_key,
        outcome=json.dumps(outcome, default=str),
    )


def get_receipt(tx: Transaction, tenant_id: str, receipt_id: str) -> Receipt:
    row = tx.one(
        "SELECT id, tenant_id, source, entity, kind, actor, request_id, idempotency_key, "
        "outcome, archive_key, archived_at, created_at FROM push_receipts "
        "WHERE id = :id AND tenant_id = :tenant_id",
        id=receipt_id,
        tenant_id=tenant_id,
    )
    if row is None:
        raise ReceiptNotFoundError()
    return Receipt(**row)


def mark_archived(tx: Transaction, receipt_id: str, archive_key: str) -> None:
    tx.execute(
        "UPDATE push_receipts SET archive_key = :key, archived_at = now() WHERE id = :id",
        id=receipt_id,
        key=archive_key,
    )
