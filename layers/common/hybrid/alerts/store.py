"""Alerts and silences in PostgreSQL.

An alert is identified by its *fingerprint*: a hash of its labels (tenant, alertname, connector,
source, job …). Events move it between `firing` and `resolved`; an event older than the one
that last moved the alert (by outbox id) changes nothing, so a late or replayed event cannot
undo a newer state. Silences mute alerts whose labels match all their matchers, between their
start and end.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hybrid.auth.keys import new_id
from hybrid.db import Transaction
from hybrid.errors import ResourceNotFoundError, ValidationFailedError

SEVERITIES = ("info", "warning", "critical")
MAX_LABELS = 32
MAX_LABEL_LENGTH = 256


class SilenceNotFoundError(ResourceNotFoundError):
    def __init__(self) -> None:
        super().__init__("silence not found")


class AlertEventError(ValidationFailedError):
    """An alert event that cannot be recorded (no labels, an unknown status)."""


def fingerprint(labels: Mapping[str, str]) -> str:
    canonical = json.dumps(dict(sorted(labels.items())), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Alert:
    id: str
    tenant_id: str
    fingerprint: str
    labels: dict[str, str]
    status: str
    severity: str
    summary: dict[str, Any]
    starts_at: datetime
    ends_at: datetime | None
    updated_at: datetime

    def to_public(
        self, *, silenced_by: str | None = None, inhibited_by: str | None = None
    ) -> dict[str, Any]:
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "labels": self.labels,
            "status": self.status,
            "severity": self.severity,
            "summary": self.summary,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "updated_at": self.updated_at,
            "silenced_by": silenced_by,
            "inhibited_by": inhibited_by,
        }


_ALERT_COLUMNS = (
    "id, tenant_id, fingerprint, labels, status, severity, summary, starts_at, ends_at, updated_at"
)


def _alert(row: dict[str, Any]) -> Alert:
    return Alert(
        **{
            **row,
            "labels": _json(row["labels"]),
            "summary": _json(row["summary"]),
        }
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def record_event(
    tx: Transaction, event: Mapping[str, Any], *, event_id: int, at: datetime
) -> Alert | None:
    """Apply one alert event (the outbox payload of a producer: `tenant_id`, `labels`,
    `status` firing|resolved, `severity`, anything else kept as its summary). Returns the
    alert when the event changed it, None for a stale or repeated event."""
    labels = event.get("labels")
    tenant_id = event.get("tenant_id")
    status = event.get("status", "firing")
    if not isinstance(labels, Mapping) or not labels or not isinstance(tenant_id, str):
        raise AlertEventError("an alert event needs a tenant_id and labels")
    if status not in ("firing", "resolved"):
        raise AlertEventError("status must be firing or resolved")
    labels = {str(k)[:MAX_LABEL_LENGTH]: str(v)[:MAX_LABEL_LENGTH] for k, v in labels.items()}
    if len(labels) > MAX_LABELS:
        raise AlertEventError(f"at most {MAX_LABELS} labels")
    severity = event.get("severity") if event.get("severity") in SEVERITIES else "warning"
    if "resolve_at" in event:
        _check_moment(event["resolve_at"], "resolve_at")
    summary = {k: v for k, v in event.items() if k not in ("labels", "tenant_id", "status")}
    print_ = fingerprint(labels)
    row = tx.one(
        f"INSERT INTO alerts (id, tenant_id, fingerprint, labels, status, severity, summary, "
        f"starts_at, ends_at, last_event_id) VALUES (:id, :tenant_id, :fingerprint, "
        f"CAST(:labels AS jsonb), :status, :severity, CAST(:summary AS jsonb), :at, "
        f"CASE WHEN :status = 'resolved' THEN CAST(:at AS timestamptz) END, :event_id) "
        f"ON CONFLICT (tenant_id, fingerprint) DO UPDATE SET "
        f"status = EXCLUDED.status, severity = EXCLUDED.severity, summary = EXCLUDED.summary, "
        f"starts_at = CASE WHEN alerts.status = 'resolved' AND EXCLUDED.status = 'firing' "
        f"THEN EXCLUDED.starts_at ELSE alerts.starts_at END, "
        f"ends_at = EXCLUDED.ends_at, updated_at = now(), last_event_id = EXCLUDED.last_event_id "
        f"WHERE alerts.last_event_id IS NULL OR alerts.last_event_id < EXCLUDED.last_event_id "
        f"RETURNING {_ALERT_COLUMNS}",
        id=new_id("alr"),
        tenant_id=tenant_id,
        fingerprint=print_,
        labels=json.dumps(labels, ensure_ascii=False),
        status=status,
        severity=severity,
        summary=json.dumps(summary, ensure_ascii=False, default=str),
        at=at,
        event_id=event_id,
    )
    return _alert(row) if row else None


def _check_moment(value: Any, name: str) -> None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise AlertEventError(f"{name} must be an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise AlertEventError(f"{name} must carry a time zone")


def resolve_expired(tx: Transaction, *, now: datetime) -> int:
    """Resolve firing alerts whose producer said when they end (`resolve_at` in the event,
    e.g. a quota warning at the end of its period); how many."""
    return tx.execute(
        "UPDATE alerts SET status = 'resolved', ends_at = "
        "CAST(summary->>'resolve_at' AS timestamptz), updated_at = now() "
        "WHERE status = 'firing' AND summary ? 'resolve_at' "
        "AND CAST(summary->>'resolve_at' AS timestamptz) <= :now",
        now=now,
    )


def list_alerts(tx: Transaction, tenant_id: str, *, status: str | None, limit: int) -> list[Alert]:
    rows = tx.rows(
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE tenant_id = :tenant_id "
        "AND (CAST(:status AS text) IS NULL OR status = :status) "
        "ORDER BY updated_at DESC, id DESC LIMIT :limit",
        tenant_id=tenant_id,
        status=status,
        limit=limit,
    )
    return [_alert(row) for row in rows]


# --- silences ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Silence:
    id: str
    tenant_id: str
    matchers: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    comment: str | None
    created_by: str
    created_at: datetime

    def matches(self, labels: Mapping[str, str], at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at and all(
            labels.get(name) == value for name, value in self.matchers.items()
        )

    def to_public(self, *, now: datetime) -> dict[str, Any]:
        state = "pending" if now < self.starts_at else "active" if now < self.ends_at else "expired"
        return {
            "id": self.id,
            "matchers": self.matchers,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "comment": self.comment,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "state": state,
        }


_SILENCE_COLUMNS = "id, tenant_id, matchers, starts_at, ends_at, comment, created_by, created_at"


def _silence(row: dict[str, Any]) -> Silence:
    return Silence(**{**row, "matchers": _json(row["matchers"])})


def create_silence(
    tx: Transaction,
    tenant_id: str,
    *,
    matchers: Mapping[str, str],
    starts_at: datetime,
    ends_at: datetime,
    comment: str | None,
    created_by: str,
) -> Silence:
    if not matchers:
        raise ValidationFailedError("matchers: at least one label to match")
    if ends_at <= starts_at:
        raise ValidationFailedError("ends_at must be after starts_at")
    row = tx.one(
        f"INSERT INTO silences (id, tenant_id, matchers, starts_at, ends_at, comment, created_by) "
        f"VALUES (:id, :tenant_id, CAST(:matchers AS jsonb), :starts_at, :ends_at, :comment, "
        f":created_by) RETURNING {_SILENCE_COLUMNS}",
        id=new_id("sil"),
        tenant_id=tenant_id,
        matchers=json.dumps(dict(matchers), ensure_ascii=False),
        starts_at=starts_at,
        ends_at=ends_at,
        comment=comment,
        created_by=created_by,
    )
    assert row is not None
    return _silence(row)


def list_silences(tx: Transaction, tenant_id: str, *, include_expired: bool) -> list[Silence]:
    rows = tx.rows(
        f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE tenant_id = :tenant_id "
        "AND deleted_at IS NULL AND (:expired OR ends_at > now()) ORDER BY starts_at, id",
        tenant_id=tenant_id,
        expired=include_expired,
    )
    return [_silence(row) for row in rows]


def delete_silence(tx: Transaction, silence_id: str, *, tenant_id: str) -> None:
    deleted = tx.execute(
        "UPDATE silences SET deleted_at = now() WHERE id = :id AND tenant_id = :tenant_id "
        "AND deleted_at IS NULL",
        id=silence_id,
        tenant_id=tenant_id,
    )
    if not deleted:
        raise SilenceNotFoundError()


def silenced_by(silences: list[Silence], labels: Mapping[str, str], at: datetime) -> str | None:
    """The first silence that mutes these labels at `at`, if any."""
    return next((s.id for s in silences if s.matches(labels, at)), None)


# --- inhibition --------------------------------------------------------------------------------

# A firing alert of the source kind mutes firing alerts of the target kinds on the same connector:
# when the connector is down, its sources and its latency say nothing new.
INHIBITS = {"ConnectorDisconnected": frozenset({"SourceDown", "ConnectorDegraded"})}


def inhibitors(alerts: list[Alert]) -> dict[tuple[str, str], str]:
    """(connector id, muted alertname) → the id of the firing alert that mutes it."""
    found: dict[tuple[str, str], str] = {}
    for alert in alerts:
        muted = INHIBITS.get(alert.labels.get("alertname", ""))
        connector_id = alert.labels.get("connector_id")
        if alert.status == "firing" and muted and connector_id:
            for name in muted:
                found[(connector_id, name)] = alert.id
    return found


def inhibited_by(alert: Alert, muting: dict[tuple[str, str], str]) -> str | None:
    key = (alert.labels.get("connector_id", ""), alert.labels.get("alertname", ""))
    return muting.get(key) if alert.status == "firing" else None


def for_notification(tx: Transaction, tenant_id: str, *, resolved_since: datetime) -> list[Alert]:
    """Firing alerts, and alerts resolved since then (their groups may owe a resolved notice)."""
    rows = tx.rows(
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE tenant_id = :tenant_id "
        "AND (status = 'firing' OR ends_at >= :since)",
        tenant_id=tenant_id,
        since=resolved_since,
    )
    return [_alert(row) for row in rows]


def firing(tx: Transaction, tenant_id: str) -> list[Alert]:
    rows = tx.rows(
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE tenant_id = :tenant_id AND status = 'firing'",
        tenant_id=tenant_id,
    )
    return [_alert(row) for row in rows]
