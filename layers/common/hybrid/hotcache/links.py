"""What the refresh needs to know about a connector before spending its budget on it: does
it answer, and is it in low-bandwidth mode (its health report says so, PROTOCOL.md)?

- tunnel: the signed ``GET /v1/health`` (short timeout);
- relay: the last poll must be recent, and the newest answered ``ping`` job (status-probe
  queues one a minute) carries the health report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from hybrid.connectors import registry
from hybrid.connectors import relay as relay_jobs

HEALTH_TIMEOUT_S = 3.0
PING_FRESH_S = 600


@dataclass(frozen=True)
class Link:
    connector_id: str
    reachable: bool
    low_bandwidth: bool


def check(services: Any, connector_id: str) -> Link:
    with services.read() as tx:
        row = tx.one(
            "SELECT transport, endpoint, last_seen_at FROM connectors "
            "WHERE id = :id AND deleted_at IS NULL",
            id=connector_id,
        )
        if row is None:
            return Link(connector_id, False, False)
        if row["transport"] == "relay":
            return _relay(tx, connector_id, row["last_seen_at"])
        secret = registry.connector_secret(tx, services.secret_box, connector_id)
    return _tunnel(connector_id, row["endpoint"], secret)


def _tunnel(connector_id: str, endpoint: str | None, secret: str) -> Link:
    from hybrid.connectors.tunnel import ConnectorError, TunnelClient

    if not endpoint:
        return Link(connector_id, False, False)
    try:
        report, _latency = TunnelClient(endpoint, secret, timeout_s=HEALTH_TIMEOUT_S).health()
    except ConnectorError:
        return Link(connector_id, False, False)
    return Link(connector_id, True, report.get("low_bandwidth") is True)


def _relay(tx: Any, connector_id: str, last_seen: datetime | None) -> Link:
    now = datetime.now(timezone.utc)
    if not relay_jobs.polled_recently(last_seen, now):
        return Link(connector_id, False, False)
    result = tx.scalar(
        "SELECT result FROM relay_jobs WHERE connector_id = :c AND kind = 'ping' "
        "AND status = 'done' AND updated_at >= :fresh ORDER BY updated_at DESC LIMIT 1",
        c=connector_id,
        fresh=now - timedelta(seconds=PING_FRESH_S),
    )
    health = (result or {}).get("health") if isinstance(result, dict) else None
    return Link(
        connector_id, True, isinstance(health, dict) and health.get("low_bandwidth") is True
    )
