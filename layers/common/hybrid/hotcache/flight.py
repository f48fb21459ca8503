"""Serving one query: a hit from Redis, or one connector query however many requests miss at
once (single flight), and the cached copy when the connector or source is down.

A miss takes the query's flight lock (a Redis lease per tenant and fingerprint). The holder
runs the query, checks the result (size, egress scan), stores it and leaves an outcome;
the others poll the entry and the outcome (bounded) and answer from whatever the flight
left: the new entry, the same refusal, or the stale copy. If the holder dies, its lease
runs out and the next waiter takes over.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from hybrid import locks, log
from hybrid.connectors.protocol import QueryRequest
from hybrid.hotcache import frequency, payload
from hybrid.hotcache.errors import QueryRefusedError, SourceUnavailableError, UnmaskedResultError
from hybrid.hotcache.fetch import Fetched, Target, fetch, remembered_target
from hybrid.hotcache.fingerprint import dialect_of, fingerprint, normalise_sql
from hybrid.hotcache.policy import CachePolicy
from hybrid.hotcache.store import CacheStore, Entry, Outcome, Seen

logger = log.get_logger("hybrid.hotcache")

_POLL_FIRST_S = 0.01
_POLL_MAX_S = 0.1
WAIT_RETRY_AFTER_S = 5


@dataclass(frozen=True)
class QuerySpec:
    """What the caller asked for."""

    connector_id: str
    source: str
    sql: str
    params: tuple[Any, ...]
    max_age: int


@dataclass(frozen=True)
class Served:
    """The answer: HIT, MISS or STALE, the result's JSON and when it was read."""

    status: str
    plain: bytes
    as_of: float
    watermark: Any
    fingerprint: str

    @property
    def age_s(self) -> int:
        return max(0, int(time.time() - self.as_of))

    def body(self) -> bytes:
        return payload.response_body(
            self.plain,
            {
                "cached_at": iso_time(self.as_of),
                "fingerprint": self.fingerprint,
                "watermark": self.watermark,
            },
        )


def iso_time(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="milliseconds")
    return moment.replace("+00:00", "Z")


def flight_name(tenant_id: str, fp: str) -> str:
    return f"qc:{tenant_id}:{fp}"


def _from_entry(status: str, entry: Entry, fp: str) -> Served:
    return Served(status, payload.decompress(entry.body), entry.as_of, entry.watermark, fp)


def serve(services: Any, tenant_id: str, spec: QuerySpec, policy: CachePolicy) -> Served:
    target = remembered_target(services, tenant_id, spec.connector_id, spec.source)
    normalised = normalise_sql(spec.sql, dialect_of(target.engine))
    fp = fingerprint(spec.connector_id, spec.source, normalised, spec.params)
    store = CacheStore(services.redis, tenant_id)
    seen = store.look(fp, count=True)
    if seen.entry is not None and time.time() - seen.entry.as_of <= spec.max_age:
        return _from_entry("HIT", seen.entry, fp)
    deadline = time.monotonic() + policy.wait_s
    baseline = seen
    delay = _POLL_FIRST_S
    while True:
        lease = locks.acquire(services.redis, flight_name(tenant_id, fp), policy.flight_lock_ms)
        if lease is not None:
            try:
                current = store.look(fp)
                if current.moved_on(baseline):
                    joined = _joined(current, fp)
                    if joined is not None:
                        return joined
                return _lead(services, store, target, spec, fp, current, policy)
            finally:
                lease.release()
        if time.monotonic() >= deadline:
            latest = store.look(fp)
            if latest.entry is not None:
                return _from_entry("STALE", latest.entry, fp)
            raise SourceUnavailableError(
                "the same query is still running for another request; retry shortly",
                retry_after=WAIT_RETRY_AFTER_S,
            )
        time.sleep(delay)
        delay = min(delay * 2, _POLL_MAX_S)
        current = store.look(fp)
        if current.moved_on(baseline):
            joined = _joined(current, fp)
            if joined is not None:
                return joined
            baseline = current


def _joined(current: Seen, fp: str) -> Served | None:
    """The answer a finished flight left for the requests that waited on it."""
    outcome = current.outcome
    if outcome is not None and outcome.kind == "refused":
        raise QueryRefusedError(outcome.detail, code=outcome.code or "query_refused")
    if outcome is not None and outcome.kind == "unavailable":
        if current.entry is not None:
            return _from_entry("STALE", current.entry, fp)
        raise SourceUnavailableError(outcome.detail, retry_after=outcome.retry_after or 30)
    if current.entry is not None:
        return _from_entry("HIT", current.entry, fp)
    return None


def _lead(
    services: Any,
    store: CacheStore,
    target: Target,
    spec: QuerySpec,
    fp: str,
    seen: Seen,
    policy: CachePolicy,
) -> Served:
    request = QueryRequest(
        source=spec.source, sql=spec.sql, params=spec.params, max_rows=policy.max_rows
    )
    started = time.time()
    try:
        fetched = fetch(services, target, request, timeout_s=policy.query_timeout_s)
        plain, encoded = vet(fetched, policy)
    except QueryRefusedError as exc:
        store.set_outcome(fp, Outcome.new("refused", detail=str(exc), code=exc.code))
        raise
    except SourceUnavailableError as exc:
        store.set_outcome(
            fp, Outcome.new("unavailable", detail=str(exc), retry_after=exc.retry_after)
        )
        logger.info("query source unavailable", fingerprint=fp, stale=seen.entry is not None)
        if seen.entry is not None:
            return _from_entry("STALE", seen.entry, fp)
        raise
    watermark = fetched.cursor if fetched.cursor is not None else iso_time(started)
    with services.write() as tx:
        frequency.remember(
            tx,
            services.secret_box,
            tenant_id=target.tenant_id,
            fp=fp,
            connector_id=target.connector_id,
            source=target.source,
            sql=spec.sql,
            params=spec.params,
        )
    written = store.put(
        fp,
        encoded,
        epoch=seen.epoch,
        as_of=started,
        watermark=watermark,
        connector_id=target.connector_id,
        source=target.source,
        ttl_s=policy.ttl_s,
        outcome=Outcome.new("ok"),
    )
    if written < 0:
        logger.info("result not cached: the cache was invalidated meanwhile", fingerprint=fp)
    return Served("MISS", plain, started, watermark, fp)


def vet(fetched: Fetched, policy: CachePolicy) -> tuple[bytes, payload.Encoded]:
    """The result's JSON and stored form, once it is known to be whole, small enough, and
    clean by the egress scanner (defence in depth: the connector masked it already)."""
    from hybrid.masking import scan

    if fetched.truncated or len(fetched.rows) > policy.max_rows:
        raise QueryRefusedError(
            f"the result has more than {policy.max_rows} rows; narrow the query or use a sync job",
            code="result_too_large",
        )
    findings = scan(fetched.rows)
    if findings:
        logger.warning(
            "unmasked data refused",
            kinds=sorted({finding.kind for finding in findings}),
            places=len(findings),
        )
        raise UnmaskedResultError()
    plain, encoded = payload.encode(fetched.columns, fetched.rows)
    if encoded.plain_bytes > policy.max_result_bytes:
        raise QueryRefusedError(
            f"the result is larger than {policy.max_result_bytes} bytes; narrow the query",
            code="result_too_large",
        )
    return plain, encoded
