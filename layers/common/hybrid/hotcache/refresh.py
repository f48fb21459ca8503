"""The 5-minute refresh: move the uses counted in Redis into the fingerprint log, pick each
tenant's hot set, and run those queries again within the run's budget, rewriting an entry
only when its content changed (otherwise its as_of and TTL move on).

One run at a time: the run holds a leader lease for as long as it may last, so an
overlapping tick finds it taken and returns. Budgets: the run's time (also bounded by the
invocation's), its bytes and each connector's bytes (much smaller in low-bandwidth mode).
A query is started only if the bytes its last result took still fit; a connector that
fails to answer is left alone for the rest of the run.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hybrid import locks, log
from hybrid.connectors.protocol import QueryRequest
from hybrid.connectors.registry import ConnectorNotFoundError
from hybrid.errors import ValidationFailedError
from hybrid.hotcache import frequency, links
from hybrid.hotcache.errors import QueryRefusedError, SourceUnavailableError
from hybrid.hotcache.fetch import fetch, find_target
from hybrid.hotcache.flight import flight_name, iso_time, vet
from hybrid.hotcache.policy import CachePolicy
from hybrid.hotcache.store import CacheStore

logger = log.get_logger("hybrid.hotcache")

LEADER_LEASE = "qc:refresh"
_LEASE_MARGIN_MS = 10_000
# A query is not started with less than this left of the run.
_START_MARGIN_S = 1.0


@dataclass
class Budget:
    """Time and bytes left to one run, shared by its threads."""

    deadline: float
    bytes_left: int
    per_connector: dict[str, int] = field(default_factory=dict)
    spent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def reserve(self, connector_id: str, estimate: int) -> bool:
        with self._lock:
            left = self.per_connector.get(connector_id, 0)
            if estimate > self.bytes_left or estimate > left or self.bytes_left <= 0 or left <= 0:
                return False
            self.bytes_left -= estimate
            self.per_connector[connector_id] = left - estimate
            return True

    def settle(self, connector_id: str, estimate: int, actual: int) -> None:
        with self._lock:
            self.bytes_left -= actual - estimate
            self.per_connector[connector_id] = self.per_connector.get(connector_id, 0) - (
                actual - estimate
            )
            self.spent += actual


@dataclass
class _Run:
    services: Any
    policy: CachePolicy
    budget: Budget
    links: dict[str, links.Link]
    stamps: dict[tuple[str, str], tuple[float, str, int]]
    down: set[str] = field(default_factory=set)
    refreshed: dict[str, list[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def connector_down(self, connector_id: str) -> None:
        with self._lock:
            self.down.add(connector_id)

    def done(self, tenant_id: str, fp: str) -> None:
        with self._lock:
            self.refreshed.setdefault(tenant_id, []).append(fp)


def run_refresh(services: Any, *, seconds: float, policy: CachePolicy) -> dict[str, Any]:
    """One refresh run of at most `seconds`; its counts (or why it did not run)."""
    started = time.monotonic()
    seconds = min(seconds, policy.refresh_time_s)
    if seconds <= _START_MARGIN_S:
        return {"skipped": "no time left in this invocation"}
    lease = locks.acquire(services.redis, LEADER_LEASE, int(seconds * 1000) + _LEASE_MARGIN_MS)
    if lease is None:
        logger.info("refresh skipped: another run holds the leader lease")
        return {"skipped": "another refresh is running"}
    try:
        summary = _refresh(services, policy, started + seconds)
    finally:
        lease.release()
    summary["ms"] = round((time.monotonic() - started) * 1000)
    logger.info("cache refresh", **summary)
    return summary


def _refresh(services: Any, policy: CachePolicy, deadline: float) -> dict[str, Any]:
    flushed = flush_uses(services, policy)
    with services.write() as tx:
        pruned = frequency.prune(tx, unused_for_s=policy.forget_unused_s)
        hot = frequency.hot_set(
            tx,
            per_tenant=policy.hot_set_size,
            min_score=policy.hot_min_score,
            half_life_s=policy.half_life_s,
        )
    now = time.time()
    stamps: dict[tuple[str, str], tuple[float, str, int]] = {}
    for tenant_id in sorted({item.tenant_id for item in hot}):
        fps = [item.fingerprint for item in hot if item.tenant_id == tenant_id]
        found = CacheStore(services.redis, tenant_id).stamps(fps)
        stamps.update({(tenant_id, fp): stamp for fp, stamp in found.items()})
    due = [
        item
        for item in hot
        if now - stamps.get((item.tenant_id, item.fingerprint), (0.0, "", 0))[0]
        >= policy.refresh_min_age_s
    ]
    counts: Counter[str] = Counter(fresh=len(hot) - len(due))
    connectors = sorted({item.connector_id for item in due})
    with ThreadPoolExecutor(max(1, policy.refresh_threads), "cache-refresh") as pool:
        checked = list(pool.map(lambda c: links.check(services, c), connectors))
        budget = Budget(deadline=deadline, bytes_left=policy.refresh_bytes)
        for link in checked:
            budget.per_connector[link.connector_id] = (
                policy.low_bandwidth_connector_bytes
                if link.low_bandwidth
                else policy.connector_bytes
            )
        run = _Run(services, policy, budget, {link.connector_id: link for link in checked}, stamps)
        counts.update(pool.map(lambda item: _refresh_one(run, item), due))
    for tenant_id, fps in run.refreshed.items():
        with services.write() as tx:
            frequency.mark_refreshed(tx, tenant_id, fps)
    return {
        "tenants": len({item.tenant_id for item in hot}),
        "hot": len(hot),
        "uses_flushed": flushed,
        "pruned": pruned,
        "low_bandwidth": sum(1 for link in checked if link.low_bandwidth),
        "bytes": budget.spent,
        **{key: counts.get(key, 0) for key in _OUTCOMES},
    }


_OUTCOMES = (
    "rewritten",
    "unchanged",
    "fresh",
    "refused",
    "unavailable",
    "busy",
    "invalidated",
    "over_time",
    "over_bytes",
)


def flush_uses(services: Any, policy: CachePolicy) -> int:
    """Move the uses counted in Redis into each tenant's scores; how many were moved."""
    with services.read() as tx:
        tenant_ids = frequency.tenants(tx)
    moved = 0
    for tenant_id in tenant_ids:
        counts = CacheStore(services.redis, tenant_id).drain_counts()
        if counts:
            with services.write() as tx:
                frequency.add_uses(tx, tenant_id, counts, half_life_s=policy.half_life_s)
            moved += sum(counts.values())
    return moved


def _refresh_one(run: _Run, item: frequency.HotQuery) -> str:
    """Refresh one hot query; the name of what happened (a key of the summary)."""
    budget, policy, services = run.budget, run.policy, run.services
    if budget.time_left() < _START_MARGIN_S:
        return "over_time"
    link = run.links.get(item.connector_id)
    if link is None or not link.reachable or item.connector_id in run.down:
        return "unavailable"
    stamp = run.stamps.get((item.tenant_id, item.fingerprint))
    estimate = stamp[2] if stamp else 0
    if not budget.reserve(item.connector_id, estimate):
        return "over_bytes"
    spent = 0
    lease = locks.acquire(
        services.redis, flight_name(item.tenant_id, item.fingerprint), policy.flight_lock_ms
    )
    if lease is None:
        budget.settle(item.connector_id, estimate, 0)
        return "busy"  # a request is running this query right now
    try:
        outcome, spent = _run_query(run, item, stamp)
        return outcome
    finally:
        lease.release()
        budget.settle(item.connector_id, estimate, spent)


def _run_query(
    run: _Run, item: frequency.HotQuery, stamp: tuple[float, str, int] | None
) -> tuple[str, int]:
    services, policy = run.services, run.policy
    store = CacheStore(services.redis, item.tenant_id)
    sql, params = item.open(services.secret_box)
    try:
        with services.read() as tx:
            target = find_target(tx, item.tenant_id, item.connector_id, item.source)
    except (ConnectorNotFoundError, ValidationFailedError):
        gone = QueryRefusedError("the connector or its source is gone", code="gone")
        return _refused(run, item, store, gone), 0
    epoch = store.look_epoch()
    request = QueryRequest(
        source=item.source, sql=sql, params=tuple(params), max_rows=policy.max_rows
    )
    started = time.time()
    timeout = min(policy.refresh_query_timeout_s, run.budget.time_left())
    try:
        fetched = fetch(services, target, request, timeout_s=timeout)
    except SourceUnavailableError:
        run.connector_down(item.connector_id)
        return "unavailable", 0
    except QueryRefusedError as exc:
        return _refused(run, item, store, exc), 0
    try:
        _plain, encoded = vet(fetched, policy)
    except QueryRefusedError as exc:
        return _refused(run, item, store, exc), fetched.wire_bytes
    watermark = fetched.cursor if fetched.cursor is not None else iso_time(started)

    def write(*, bump_only: bool) -> int:
        return store.put(
            item.fingerprint,
            encoded,
            epoch=epoch,
            as_of=started,
            watermark=watermark,
            connector_id=item.connector_id,
            source=item.source,
            ttl_s=policy.ttl_s,
            bump_only=bump_only,
        )

    if stamp is not None and stamp[1] == encoded.content_hash:
        bumped = write(bump_only=True)
        if bumped == 0:
            run.done(item.tenant_id, item.fingerprint)
            return "unchanged", fetched.wire_bytes
        if bumped == -1:
            return "invalidated", fetched.wire_bytes
    written = write(bump_only=False)
    if written < 0:
        return "invalidated", fetched.wire_bytes
    run.done(item.tenant_id, item.fingerprint)
    return "rewritten", fetched.wire_bytes


def _refused(run: _Run, item: frequency.HotQuery, store: CacheStore, exc: QueryRefusedError) -> str:
    """The query no longer runs (or no longer may be cached): its entry goes, and it leaves
    the hot set until a request runs it successfully again."""
    store.delete(item.fingerprint)
    with run.services.write() as tx:
        frequency.mark_refused(tx, item.tenant_id, item.fingerprint, exc.code)
    logger.info("hot query refused on refresh", fingerprint=item.fingerprint, code=exc.code)
    return "refused"
