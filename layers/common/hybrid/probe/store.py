"""Link states and probe samples in PostgreSQL. A link is (connector, source); source '' is the
cloud↔connector link itself."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from hybrid.db import Transaction
from hybrid.probe.states import LinkState, Probe

CONNECTOR_LINK = ""
_STATE_COLUMNS = "state, since, failures, successes, last_ok_at, last_probe_at, latency_ms, error"


def lock_state(tx: Transaction, connector_id: str, source: str) -> LinkState:
    row = tx.one(
        f"SELECT {_STATE_COLUMNS} FROM link_states "
        "WHERE connector_id = :connector_id AND source = :source FOR UPDATE",
        connector_id=connector_id,
        source=source,
    )
    return LinkState(**row) if row else LinkState()


def save_state(
    tx: Transaction, connector_id: str, tenant_id: str, source: str, state: LinkState
) -> None:
    tx.execute(
        "INSERT INTO link_states (connector_id, source, tenant_id, state, since, failures, "
        "successes, last_ok_at, last_probe_at, latency_ms, error) VALUES (:connector_id, "
        ":source, :tenant_id, :state, :since, :failures, :successes, :last_ok_at, "
        ":last_probe_at, :latency_ms, :error) ON CONFLICT (connector_id, source) DO UPDATE SET "
        "state = EXCLUDED.state, since = EXCLUDED.since, failures = EXCLUDED.failures, "
        "successes = EXCLUDED.successes, last_ok_at = EXCLUDED.last_ok_at, "
        "last_probe_at = EXCLUDED.last_probe_at, latency_ms = EXCLUDED.latency_ms, "
        "error = EXCLUDED.error",
        connector_id=connector_id,
        source=source,
        tenant_id=tenant_id,
        **asdict(state),
    )


def record_sample(
    tx: Transaction, connector_id: str, tenant_id: str, source: str, probe: Probe, state: str
) -> None:
    tx.execute(
        "INSERT INTO probe_samples (connector_id, tenant_id, source, ok, latency_ms, state, "
        "error, at) VALUES (:connector_id, :tenant_id, :source, :ok, :latency_ms, :state, "
        ":error, :at)",
        connector_id=connector_id,
        tenant_id=tenant_id,
        source=source,
        ok=probe.ok,
        latency_ms=probe.latency_ms,
        state=state,
        error=probe.error,
        at=probe.at,
    )


def link_states(tx: Transaction, tenant_id: str) -> dict[str, dict[str, LinkState]]:
    """connector id → source ('' for the connector) → state, for the tenant's connectors."""
    rows = tx.rows(
        f"SELECT connector_id, source, {_STATE_COLUMNS} FROM link_states "
        "WHERE tenant_id = :tenant_id",
        tenant_id=tenant_id,
    )
    found: dict[str, dict[str, LinkState]] = {}
    for row in rows:
        connector_id, source = row.pop("connector_id"), row.pop("source")
        found.setdefault(connector_id, {})[source] = LinkState(**row)
    return found


def latency_p95(tx: Transaction, tenant_id: str, *, since: datetime) -> dict[str, float]:
    rows = tx.rows(
        "SELECT connector_id, percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95 "
        "FROM probe_samples WHERE tenant_id = :tenant_id AND source = '' AND ok "
        "AND latency_ms IS NOT NULL AND at >= :since GROUP BY connector_id",
        tenant_id=tenant_id,
        since=since,
    )
    return {row["connector_id"]: float(row["p95"]) for row in rows if row["p95"] is not None}


def history(
    tx: Transaction, connector_id: str, *, since: datetime, until: datetime, limit: int
) -> list[dict[str, Any]]:
    return tx.rows(
        "SELECT source, ok, latency_ms, state, error, at FROM probe_samples "
        "WHERE connector_id = :connector_id AND at >= :since AND at <= :until "
        "ORDER BY at DESC, id DESC LIMIT :limit",
        connector_id=connector_id,
        since=since,
        until=until,
        limit=limit,
    )


def prune_samples(tx: Transaction, *, older_than: datetime) -> int:
    return tx.execute("DELETE FROM probe_samples WHERE at < :before", before=older_than)
