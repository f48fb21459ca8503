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


def lock_states(tx: Transaction, connector_id: str) -> dict[str, LinkState]:
    """The connector's links (its own under ''), locked until the transaction ends."""
    rows = tx.rows(
        f"SELECT source, {_STATE_COLUMNS} FROM link_states "
        "WHERE connector_id = :connector_id ORDER BY source FOR UPDATE",
        connector_id=connector_id,
    )
    return {row.pop("source"): LinkState(**row) for row in rows}


def save_probes(
    tx: Transaction,
    connector_id: str,
    tenant_id: str,
    results: list[tuple[str, Probe, LinkState]],
) -> None:
    """Each link's new state and its sample: two statements whatever the number of links."""
    if not results:
        return
    params: dict[str, Any] = {"connector_id": connector_id, "tenant_id": tenant_id}
    state_rows, sample_rows = [], []
    for index, (source, probe, state) in enumerate(results):
        fields = {"source": source, **asdict(state)}
        params.update({f"{name}_{index}": value for name, value in fields.items()})
        state_rows.append(
            f"(:connector_id, :source_{index}, :tenant_id, :state_{index}, :since_{index}, "
            f":failures_{index}, :successes_{index}, :last_ok_at_{index}, "
            f":last_probe_at_{index}, :latency_ms_{index}, :error_{index})"
        )
        params.update(
            {
                f"ok_{index}": probe.ok,
                f"probe_latency_{index}": probe.latency_ms,
                f"probe_error_{index}": probe.error,
                f"at_{index}": probe.at,
            }
        )
        sample_rows.append(
            f"(:connector_id, :tenant_id, :source_{index}, :ok_{index}, "
            f":probe_latency_{index}, :state_{index}, :probe_error_{index}, :at_{index})"
        )
    tx.execute(
        "INSERT INTO link_states (connector_id, source, tenant_id, state, since, failures, "
        "successes, last_ok_at, last_probe_at, latency_ms, error) VALUES "
        + ", ".join(state_rows)
        + " ON CONFLICT (connector_id, source) DO UPDATE SET "
        "state = EXCLUDED.state, since = EXCLUDED.since, failures = EXCLUDED.failures, "
        "successes = EXCLUDED.successes, last_ok_at = EXCLUDED.last_ok_at, "
        "last_probe_at = EXCLUDED.last_probe_at, latency_ms = EXCLUDED.latency_ms, "
        "error = EXCLUDED.error",
        **params,
    )
    tx.execute(
        "INSERT INTO probe_samples (connector_id, tenant_id, source, ok, latency_ms, state, "
        "error, at) VALUES " + ", ".join(sample_rows),
        **params,
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
