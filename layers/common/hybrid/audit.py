"""The audit log: who did what to which object, written in the transaction of the change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hybrid.db import Transaction

MAX_PAGE = 500


@dataclass(frozen=True)
class AuditEntry:
    id: int
    tenant_id: str | None
    actor: str
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]
    request_id: str | None
    at: datetime

    def to_public(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "tenant_id": self.tenant_id,
            "actor": self.actor,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "details": self.details,
            "request_id": self.request_id,
            "at": self.at,
        }


def record(
    tx: Transaction,
    *,
    tenant_id: str | None,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | None,
    request_id: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one entry. `details` must never hold a secret."""
    tx.execute(
        "INSERT INTO audit_log (tenant_id, actor, action, target_type, target_id, details, "
        "request_id) VALUES (:tenant_id, :actor, :action, :target_type, :target_id, "
        "CAST(:details AS jsonb), :request_id)",
        tenant_id=tenant_id,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=json.dumps(details or {}),
        request_id=request_id,
    )


def search(
    tx: Transaction,
    *,
    tenant_id: str | None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Newest first. `tenant_id` None means every tenant (operators only)."""
    rows = tx.rows(
        "SELECT id, tenant_id, actor, action, target_type, target_id, details, request_id, at "
        "FROM audit_log WHERE (CAST(:tenant_id AS text) IS NULL OR tenant_id = :tenant_id) "
        "AND (CAST(:action AS text) IS NULL OR action = :action) "
        "AND (CAST(:since AS timestamptz) IS NULL OR at >= :since) "
        "AND (CAST(:until AS timestamptz) IS NULL OR at < :until) "
        "AND (CAST(:before_id AS bigint) IS NULL OR id < :before_id) "
        "ORDER BY id DESC LIMIT :limit",
        tenant_id=tenant_id,
        action=action,
        since=since,
        until=until,
        before_id=before_id,
        limit=min(max(limit, 1), MAX_PAGE),
    )
    return [
        AuditEntry(
            id=row["id"],
            tenant_id=row["tenant_id"],
            actor=row["actor"],
            action=row["action"],
            target_type=row["target_type"],
            target_id=row["target_id"],
            details=row["details"] if isinstance(row["details"], dict) else {},
            request_id=row["request_id"],
            at=row["at"],
        )
        for row in rows
    ]
