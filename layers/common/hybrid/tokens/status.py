"""A token's status changes: the PostgreSQL row, an audit entry and, when the pool names an
alert tenant, an alert event in the outbox, all in the caller's transaction."""

from __future__ import annotations

from hybrid import audit, outbox
from hybrid.db import Transaction
from hybrid.tokens import store

ALERT_TOPIC = "alerts"
ALERT_NAME = "TokenSuspended"


def change_status(
    tx: Transaction,
    token_id: str,
    status: str,
    *,
    reason: str | None,
    actor: str,
    request_id: str | None = None,
    only_from: tuple[str, ...] | None = None,
) -> tuple[store.Token, bool]:
    """Move the token to `status`; the token and whether anything changed (an unchanged status
    writes nothing)."""
    before = store.get_token(tx, token_id, for_update=True)
    token, changed = store.set_status(tx, token_id, status, reason=reason, only_from=only_from)
    if not changed:
        return token, False
    audit.record(
        tx,
        tenant_id=None,
        actor=actor,
        action=f"token.{status}",
        target_type="token",
        target_id=token.id,
        request_id=request_id,
        details={"pool": token.pool, "from": before.status, "to": status, "reason": reason},
    )
    if status == "suspended" or before.status == "suspended":
        _alert(tx, token, firing=status == "suspended", reason=reason)
    return token, True


def _alert(tx: Transaction, token: store.Token, *, firing: bool, reason: str | None) -> None:
    pool = store.get_pool(tx, token.pool)
    if pool.alert_tenant_id is None:
        return
    state = "firing" if firing else "resolved"
    outbox.enqueue(
        tx,
        ALERT_TOPIC,
        {
            "kind": "token_status",
            "status": state,
            "severity": "warning",
            "tenant_id": pool.alert_tenant_id,
            "labels": {
                "alertname": ALERT_NAME,
                "pool": token.pool,
                "token_id": token.id,
                "token": token.name,
            },
            "state": token.status,
            "reason": reason,
            "at": token.updated_at,
        },
        dedupe_key=f"token:{token.id}:{state}:{token.updated_at.isoformat()}",
    )
