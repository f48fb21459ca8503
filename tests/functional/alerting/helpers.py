"""Helpers of the alerting tests: alert events put in the outbox, what a receiver got, time
passing for the notification groups."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any


def put_event(
    env,
    tenant_id: str,
    alertname: str,
    connector: str,
    status: str,
    *,
    age_s: float = 60,
    severity: str = "critical",
    **labels: str,
) -> None:
    from hybrid import outbox
    from hybrid.db import database

    with database(env["DATABASE_URL"]).transaction() as tx:
        outbox.enqueue(
            tx,
            "alerts",
            {
                "status": status,
                "severity": severity,
                "tenant_id": tenant_id,
                "labels": {"alertname": alertname, "connector_id": connector, **labels},
                "at": (datetime.now(timezone.utc) - timedelta(seconds=age_s)).isoformat(),
            },
        )


def payloads(receiver) -> list[dict[str, Any]]:
    import json

    return [json.loads(body)["data"] for _headers, body in receiver.received]


def age_groups(env, seconds: float) -> None:
    from hybrid.db import database

    with database(env["DATABASE_URL"]).transaction() as tx:
        tx.execute(
            "UPDATE alert_groups "
            "SET last_notified_at = last_notified_at - make_interval(secs => :s)",
            s=seconds,
        )
