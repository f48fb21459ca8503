"""From alerts to notifications, the Alertmanager way: alerts are grouped per channel (by
alertname and connector); a group's first notification waits `GROUP_WAIT` so that alerts
arriving together go out together; a changed group is notified again no sooner than
`GROUP_INTERVAL` after its last notification; an unchanged firing group is repeated every
`REPEAT_INTERVAL`; when everything in it has resolved, one resolved notice goes out. Silenced
and inhibited alerts are left out, and a channel only gets alerts at or above its severity.

Deliveries are a ledger (`alert_deliveries`): a notification is written in the same transaction
that moves its group, then sent; a send that fails is retried with backoff, and after
`MAX_ATTEMPTS` the delivery is dead and an `AlertDeliveryFailed` event goes to the outbox. A
delivery is claimed with a lease before sending, so overlapping ticks never send it twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hybrid import outbox
from hybrid.alerts.store import Alert, Silence, inhibited_by, inhibitors, silenced_by
from hybrid.db import Database, Transaction

GROUP_WAIT = timedelta(seconds=30)
GROUP_INTERVAL = timedelta(minutes=5)
REPEAT_INTERVAL = timedelta(hours=4)
MAX_ATTEMPTS = 5
LEASE = timedelta(seconds=60)
_RANK = {"info": 0, "warning": 1, "critical": 2}
GROUP_LABELS = ("alertname", "connector_id")


def group_key(alert: Alert) -> str:
    return "|".join(f"{name}={alert.labels.get(name, '')}" for name in GROUP_LABELS)


def _digest(alerts: Sequence[Alert]) -> str:
    items = sorted((alert.fingerprint, alert.status) for alert in alerts)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class GroupState:
    digest: str | None
    firing: bool
    last_notified_at: datetime | None


def due(alerts: Sequence[Alert], state: GroupState | None, now: datetime) -> tuple[bool, str]:
    """Whether the group should be notified now, and its digest."""
    digest = _digest(alerts)
    firing = any(alert.status == "firing" for alert in alerts)
    if state is None or state.last_notified_at is None:
        if not firing:
            return False, digest  # resolved before anyone was told: nothing to say
        oldest = min(alert.starts_at for alert in alerts if alert.status == "firing")
        return now - oldest >= GROUP_WAIT, digest
    since = now - state.last_notified_at
    if digest != state.digest:
        if not firing and not state.firing:
            return False, digest
        return since >= GROUP_INTERVAL, digest
    return firing and since >= REPEAT_INTERVAL, digest


def plan(
    tx: Transaction,
    *,
    tenant_id: str,
    channel: Any,
    alerts: Sequence[Alert],
    silences: Sequence[Silence],
    now: datetime,
) -> int:
    """Queue the channel's due notifications in `tx`; how many."""
    muting = inhibitors(list(alerts))
    visible = [
        alert
        for alert in alerts
        if _RANK.get(alert.severity, 1) >= _RANK[channel.min_severity]
        and silenced_by(list(silences), alert.labels, now) is None
        and inhibited_by(alert, muting) is None
    ]
    groups: dict[str, list[Alert]] = {}
    for alert in visible:
        groups.setdefault(group_key(alert), []).append(alert)
    queued = 0
    for key, members in sorted(groups.items()):
        row = tx.one(
            "SELECT digest, firing, last_notified_at FROM alert_groups "
            "WHERE channel_id = :channel_id AND group_key = :key FOR UPDATE",
            channel_id=channel.id,
            key=key,
        )
        state = GroupState(**row) if row else None
        go, digest = due(members, state, now)
        if not go:
            continue
        firing = any(alert.status == "firing" for alert in members)
        tx.execute(
            "INSERT INTO alert_groups (tenant_id, channel_id, group_key, digest, firing, "
            "last_notified_at) VALUES (:tenant_id, :channel_id, :key, :digest, :firing, :now) "
            "ON CONFLICT (channel_id, group_key) DO UPDATE SET digest = EXCLUDED.digest, "
            "firing = EXCLUDED.firing, last_notified_at = EXCLUDED.last_notified_at",
            tenant_id=tenant_id,
            channel_id=channel.id,
            key=key,
            digest=digest,
            firing=firing,
            now=now,
        )
        tx.execute(
            "INSERT INTO alert_deliveries (tenant_id, channel_id, group_key, notification, "
            "status) VALUES (:tenant_id, :channel_id, :key, CAST(:notification AS jsonb), "
            "'pending')",
            tenant_id=tenant_id,
            channel_id=channel.id,
            key=key,
            notification=json.dumps(_notification(tenant_id, key, members), default=str),
        )
        queued += 1
    return queued


def _notification(tenant_id: str, key: str, members: Sequence[Alert]) -> dict[str, Any]:
    firing = [a for a in members if a.status == "firing"]
    status = "firing" if firing else "resolved"
    severity = max((a.severity for a in members), key=lambda s: _RANK.get(s, 1))
    name = members[0].labels.get("alertname", "alert")
    connector = members[0].labels.get("connector", members[0].labels.get("connector_id", ""))
    title = f"[{status.upper()}] {name} {connector}".strip()
    if len(members) > 1:
        title += f" ({len(firing)} firing of {len(members)})"
    return {
        "title": title,
        "status": status,
        "severity": severity,
        "group_key": key,
        "tenant_id": tenant_id,
        "alerts": [
            {
                "labels": a.labels,
                "status": a.status,
                "starts_at": a.starts_at.isoformat(),
                "ends_at": a.ends_at.isoformat() if a.ends_at else None,
                "error": a.summary.get("error"),
            }
            for a in sorted(members, key=lambda a: a.fingerprint)
        ],
    }


# --- the delivery ledger --------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    id: int
    tenant_id: str
    channel_id: str
    group_key: str
    notification: dict[str, Any]
    attempts: int


def claim(db: Database, *, limit: int) -> list[Delivery]:
    """Due deliveries, leased so that no other tick sends them meanwhile."""
    with db.transaction() as tx:
        rows = tx.rows(
            "UPDATE alert_deliveries d SET attempts = d.attempts + 1, "
            "next_attempt_at = now() + make_interval(secs => :lease), updated_at = now() "
            "FROM (SELECT id FROM alert_deliveries WHERE status = 'pending' "
            "AND next_attempt_at <= now() ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED) due "
            "WHERE d.id = due.id "
            "RETURNING d.id, d.tenant_id, d.channel_id, d.group_key, d.notification, d.attempts",
            lease=LEASE.total_seconds(),
            limit=limit,
        )
    return [
        Delivery(
            **{
                **row,
                "notification": json.loads(row["notification"])
                if isinstance(row["notification"], str)
                else row["notification"],
            }
        )
        for row in sorted(rows, key=lambda r: r["id"])
    ]


def record(
    tx: Transaction,
    delivery: Delivery,
    *,
    ok: bool,
    retryable: bool,
    status: str,
    detail: str,
    retry_after_s: float | None,
) -> str:
    """The attempt's outcome: sent, pending again (with backoff) or dead (alerted on)."""
    if ok:
        outcome = "sent"
    elif retryable and delivery.attempts < MAX_ATTEMPTS:
        outcome = "pending"
    else:
        outcome = "dead"
    backoff = max(retry_after_s or 0.0, 30.0 * 2 ** (delivery.attempts - 1))
    tx.execute(
        "UPDATE alert_deliveries SET status = :outcome, last_status = :status, detail = :detail, "
        "next_attempt_at = now() + make_interval(secs => :backoff), updated_at = now() "
        "WHERE id = :id",
        id=delivery.id,
        outcome=outcome,
        status=status[:64],
        detail=detail[:500],
        backoff=min(backoff, 1800.0),
    )
    if outcome == "dead" and delivery.notification.get("alerts"):
        first = delivery.notification["alerts"][0]["labels"]
        if first.get("alertname") != "AlertDeliveryFailed":  # never a loop of failures
            outbox.enqueue(
                tx,
                "alerts",
                {
                    "status": "firing",
                    "severity": "warning",
                    "tenant_id": delivery.tenant_id,
                    "labels": {
                        "alertname": "AlertDeliveryFailed",
                        "channel_id": delivery.channel_id,
                        "tenant_id": delivery.tenant_id,
                    },
                    "error": f"{status}: {detail}"[:300],
                    "group_key": delivery.group_key,
                },
                dedupe_key=f"delivery-dead:{delivery.id}",
            )
    return outcome


def send_due(
    db: Database,
    channel_for: Callable[[Delivery], Any],
    *,
    limit: int = 100,
) -> dict[str, int]:
    """Send every due delivery once; counts by outcome."""
    from hybrid.alerts.channels import Notification

    counts = {"sent": 0, "pending": 0, "dead": 0}
    for delivery in claim(db, limit=limit):
        data = delivery.notification
        channel = channel_for(delivery)
        result = channel.send(
            Notification(
                title=data["title"],
                status=data["status"],
                severity=data["severity"],
                alerts=data["alerts"],
                group_key=data["group_key"],
                tenant_id=data["tenant_id"],
                id=f"ntf_{delivery.id}",
            )
        )
        with db.transaction() as tx:
            outcome = record(
                tx,
                delivery,
                ok=result.ok,
                retryable=result.retryable,
                status=result.status,
                detail=result.detail,
                retry_after_s=result.retry_after_s,
            )
        counts[outcome] += 1
    return counts
