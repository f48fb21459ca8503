"""The minute tick of status-probe: probe every connector and each of its sources, move each
link's state (with hysteresis), keep a sample, and put an alert event in the outbox in the same
transaction as a state change, so no transition is ever lost.

- tunnel connectors: the signed ``GET /v1/health``, timed; its `sources` are the source links;
- relay connectors: the heartbeat (every poll stamps `connectors.last_seen_at`) must be fresher
  than `hybrid.connectors.relay.SILENT_AFTER_S`; a `ping` relay job is queued each tick and the
  newest answered one, if recent, gives the source links and the round trip.

Probes run concurrently (one thread each, bounded), so a thousand connectors with a few dead
ones fit in one tick; each probe has its own timeout.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from hybrid import log, outbox
from hybrid.alerts.announce import ALERT_TOPIC, announce
from hybrid.cache import CacheError, redis_errors
from hybrid.connectors import registry
from hybrid.connectors import relay as relay_jobs
from hybrid.connectors.tunnel import ConnectorError, TunnelClient
from hybrid.db import Transaction
from hybrid.probe import store
from hybrid.probe.states import LinkState, Probe, advance

logger = log.get_logger("hybrid.probe")

PING_FRESH_S = 150
PROBE_TIMEOUT_S = 3.0
WRITE_BATCH = 50
LATEST_TTL_S = 300
PROBE_THREADS = 64
SAMPLE_RETENTION_DAYS = 14


@dataclass
class ConnectorProbe:
    """One connector's probe: its own link and its sources'."""

    connector_id: str
    tenant_id: str
    name: str
    link: Probe
    sources: dict[str, Probe] = field(default_factory=dict)


def _connectors(tx: Transaction) -> list[dict[str, Any]]:
    return tx.rows(
        "SELECT c.id, c.tenant_id, c.name, c.transport, c.endpoint, c.last_seen_at, "
        "c.latency_threshold_ms, COALESCE(array_agg(s.name ORDER BY s.name) "
        "FILTER (WHERE s.name IS NOT NULL), '{}') AS sources "
        "FROM connectors c LEFT JOIN connector_sources s ON s.connector_id = c.id "
        "WHERE c.deleted_at IS NULL GROUP BY c.id ORDER BY c.id"
    )


def probe_tunnel(connector: dict[str, Any], secret: str, now: datetime) -> ConnectorProbe:
    client = TunnelClient(connector["endpoint"], secret, timeout_s=PROBE_TIMEOUT_S)
    try:
        report, latency = client.health()
    except ConnectorError as exc:
        error = str(exc)[:300]
        return ConnectorProbe(
            connector["id"],
            connector["tenant_id"],
            connector["name"],
            Probe(ok=False, at=now, error=error),
        )
    sources = _source_probes(report, connector["sources"], now)
    slow = latency > connector["latency_threshold_ms"]
    some_down = any(not probe.ok for probe in sources.values())
    return ConnectorProbe(
        connector["id"],
        connector["tenant_id"],
        connector["name"],
        Probe(ok=True, at=now, latency_ms=round(latency, 1), degraded=slow or some_down),
        sources,
    )


def _source_probes(report: dict[str, Any], names: list[str], now: datetime) -> dict[str, Probe]:
    reported = {
        item.get("name"): item for item in report.get("sources") or [] if isinstance(item, dict)
    }
    probes = {}
    for name in names:
        item = reported.get(name)
        if item is None:
            probes[name] = Probe(ok=False, at=now, error="not reported by the connector")
            continue
        latency = item.get("latency_ms")
        probes[name] = Probe(
            ok=bool(item.get("ok")),
            at=now,
            latency_ms=float(latency) if isinstance(latency, int | float) else None,
            error=None if item.get("ok") else str(item.get("error") or "down")[:300],
        )
    return probes


def probe_relay(tx: Transaction, connector: dict[str, Any], now: datetime) -> ConnectorProbe:
    last_seen = connector["last_seen_at"]
    fresh = relay_jobs.polled_recently(last_seen, now)
    ping = tx.one(
        "SELECT result, updated_at, created_at FROM relay_jobs WHERE connector_id = :c "
        "AND kind = 'ping' AND status = 'done' AND updated_at >= :fresh "
        "ORDER BY updated_at DESC LIMIT 1",
        c=connector["id"],
        fresh=now - timedelta(seconds=PING_FRESH_S),
    )
    sources: dict[str, Probe] = {}
    latency = None
    if ping is not None and fresh:
        result = ping["result"] or {}
        sources = _source_probes(result.get("health") or {}, connector["sources"], now)
        latency = (ping["updated_at"] - ping["created_at"]).total_seconds() * 1000
    error = None if fresh else "no heartbeat from the connector"
    return ConnectorProbe(
        connector["id"],
        connector["tenant_id"],
        connector["name"],
        Probe(
            ok=fresh,
            at=now,
            latency_ms=round(latency, 1) if latency is not None else None,
            degraded=fresh and any(not probe.ok for probe in sources.values()),
            error=error,
        ),
        sources,
    )


def _queue_ping(tx: Transaction, connector: dict[str, Any]) -> bool:
    """A ping for the relay connector unless one is still waiting; True when one was queued."""
    waiting = tx.scalar(
        "SELECT count(*) FROM relay_jobs WHERE connector_id = :c AND kind = 'ping' "
        "AND status IN ('pending', 'leased')",
        c=connector["id"],
    )
    if waiting:
        return False
    relay_jobs.enqueue(
        tx, connector_id=connector["id"], tenant_id=connector["tenant_id"], kind="ping"
    )
    return True


def apply_probe(tx: Transaction, result: ConnectorProbe) -> list[tuple[str, str, str]]:
    """Move the connector's and its sources' states; the transitions (source, from, to), each
    with its alert event queued in `tx`."""
    transitions: list[tuple[str, str, str]] = []
    links = [(store.CONNECTOR_LINK, result.link)]
    if result.link.ok:
        links += sorted(result.sources.items())
    current = store.lock_states(tx, result.connector_id)
    saved = []
    for source, probe in links:
        before = current.get(source, LinkState())
        after = advance(before, probe)
        saved.append((source, probe, after))
        if after.state != before.state and not (
            before.state == "unknown" and after.state == "connected"
        ):
            _alert(tx, result, source, before, after)
            transitions.append((source, before.state, after.state))
    store.save_probes(tx, result.connector_id, result.tenant_id, saved)
    return transitions


def _alert(
    tx: Transaction, result: ConnectorProbe, source: str, before: LinkState, after: LinkState
) -> None:
    firing = after.state in ("disconnected", "degraded")
    since = after.since.isoformat() if after.since else ""
    if source == store.CONNECTOR_LINK:
        name = "ConnectorDisconnected" if after.state == "disconnected" else "ConnectorDegraded"
        if not firing:
            name = (
                "ConnectorDisconnected" if before.state == "disconnected" else "ConnectorDegraded"
            )
    else:
        name = "SourceDown"
    labels = {
        "alertname": name,
        "tenant_id": result.tenant_id,
        "connector_id": result.connector_id,
        "connector": result.name,
    }
    if source:
        labels["source"] = source
    outbox.enqueue(
        tx,
        ALERT_TOPIC,
        {
            "kind": "link_state",
            "status": "firing" if firing else "resolved",
            "severity": "critical" if after.state == "disconnected" else "warning",
            "tenant_id": result.tenant_id,
            "labels": labels,
            "state": after.state,
            "previous_state": before.state,
            "at": after.since,
            "error": after.error,
        },
        dedupe_key=f"link:{result.connector_id}:{source}:{after.state}:{since}",
    )


def _batches(items: Iterable[ConnectorProbe], size: int) -> Iterator[list[ConnectorProbe]]:
    batch: list[ConnectorProbe] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def latest_key(tenant_id: str) -> str:
    return f"hybrid:status:{{{tenant_id}}}"


def _publish_latest(services: Any, connectors: list[dict[str, Any]]) -> None:
    """Each tenant's link states into Redis (a hash: connector id → JSON of its links), for
    readers that must not query PostgreSQL; best effort, PostgreSQL stays the record."""
    tenants = sorted({c["tenant_id"] for c in connectors})
    try:
        with redis_errors():
            pipe = services.redis().pipeline(transaction=False)
            for tenant_id in tenants:
                with services.read() as tx:
                    states = store.link_states(tx, tenant_id)
                key = latest_key(tenant_id)
                pipe.delete(key)
                for connector_id, links in states.items():
                    pipe.hset(key, connector_id, _links_json(links))
                pipe.expire(key, LATEST_TTL_S)
            pipe.execute()
    except CacheError as exc:
        logger.warning("latest status not written to redis", error_type=type(exc).__name__)


def _links_json(links: dict[str, LinkState]) -> bytes:
    from hybrid.http.response import dump_json

    return dump_json({source or "": asdict(state) for source, state in links.items()})


def run_tick(services: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """Probe everything once; the counts of what happened."""
    now = now or datetime.now(timezone.utc)
    started = time.monotonic()
    with services.write() as tx:
        connectors = _connectors(tx)
        secrets = {
            c["id"]: registry.connector_secret(tx, services.secret_box, c["id"])
            for c in connectors
            if c["transport"] == "tunnel" and c["endpoint"]
        }
        relay_results = [probe_relay(tx, c, now) for c in connectors if c["transport"] == "relay"]
        pinged = [c["id"] for c in connectors if c["transport"] == "relay" and _queue_ping(tx, c)]
    for connector_id in pinged:
        relay_jobs.wake(services.redis, connector_id)
    tunnels = [c for c in connectors if c["id"] in secrets]
    transitions = 0
    # Results are stored as they come in, while the slower probes are still waiting; a
    # transaction holds a batch of connectors (each one's states and alerts stay together).
    with ThreadPoolExecutor(max(1, min(PROBE_THREADS, len(tunnels)))) as pool:
        futures = [pool.submit(probe_tunnel, c, secrets[c["id"]], now) for c in tunnels]
        done = (future.result() for future in as_completed(futures))
        for batch in _batches([*relay_results, *done], WRITE_BATCH):
            with services.write() as tx:
                transitions += sum(len(apply_probe(tx, result)) for result in batch)
    _publish_latest(services, connectors)
    announce(services.queue, events=transitions, producer="status-probe")
    with services.write() as tx:
        pruned = store.prune_samples(tx, older_than=now - timedelta(days=SAMPLE_RETENTION_DAYS))
    summary = {
        "connectors": len(connectors),
        "transitions": transitions,
        "pruned": pruned,
        "ms": round((time.monotonic() - started) * 1000),
    }
    logger.info("probe tick", **summary)
    return summary
