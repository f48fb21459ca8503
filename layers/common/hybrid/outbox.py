"""The transactional outbox: work for later (events, uploads, notifications) committed in the
same PostgreSQL transaction as the change that causes it, then delivered at least once.

`enqueue` runs inside the caller's transaction, so a rolled-back change leaves no item. Workers
`claim` due items in one short transaction (`FOR UPDATE SKIP LOCKED`, so concurrent workers
never get the same item) and push each claimed item's `available_at` forward by a lease: if the
worker dies before `mark_done`/`mark_failed`, the item becomes due again when the lease ends.
Delivery is therefore at least once; consumers must be idempotent (use the item id or the
payload's own key). An optional `dedupe_key` makes an enqueue a no-op when the key exists.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from hybrid.db import Database, Transaction
from hybrid.log import redact_text

MAX_ERROR_LENGTH = 500
MAX_CLAIM = 1000


@dataclass(frozen=True)
class OutboxItem:
    id: int
    topic: str
    payload: dict[str, Any]
    blob: bytes | None
    attempts: int
    """Delivery attempts including the current one (1 on the first claim)."""


def enqueue(
    tx: Transaction,
    topic: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str | None = None,
    blob: bytes | None = None,
    available_at: datetime | None = None,
) -> int | None:
    """Add an item in the caller's transaction; its id, or None when `dedupe_key` exists."""
    if not topic:
        raise ValueError("topic must not be empty")
    if available_at is not None and available_at.tzinfo is None:
        raise ValueError("available_at must be timezone-aware")
    row = tx.one(
        "INSERT INTO outbox (topic, dedupe_key, payload, blob, available_at) "
        "VALUES (:topic, :dedupe_key, CAST(:payload AS jsonb), :blob, "
        "coalesce(CAST(:available_at AS timestamptz), now())) "
        "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
        topic=topic,
        dedupe_key=dedupe_key,
        payload=_dump(payload),
        blob=blob,
        available_at=available_at,
    )
    return int(row["id"]) if row is not None else None


def claim(
    db: Database,
    *,
    topics: Sequence[str],
    limit: int,
    lease_seconds: int = 60,
    max_attempts: int | None = None,
) -> list[OutboxItem]:
    """Take up to `limit` due items of `topics` (oldest first) for `lease_seconds`.

    Each claim counts as an attempt. With `max_attempts`, items that already had that many
    attempts are left alone (dead letters: still in the table with their `last_error`).
    """
    if not topics:
        return []
    if not 1 <= limit <= MAX_CLAIM:
        raise ValueError(f"limit must be between 1 and {MAX_CLAIM}")
    if lease_seconds < 1:
        raise ValueError("lease_seconds must be at least 1")
    with db.transaction() as tx:
        rows = tx.rows(
            "WITH due AS ("
            " SELECT id FROM outbox"
            " WHERE done_at IS NULL AND available_at <= now() AND topic = ANY(:topics)"
            " AND (CAST(:max_attempts AS integer) IS NULL"
            "      OR attempts < CAST(:max_attempts AS integer))"
            " ORDER BY available_at, id LIMIT :limit FOR UPDATE SKIP LOCKED) "
            "UPDATE outbox o SET attempts = o.attempts + 1, "
            "available_at = now() + CAST(:lease AS integer) * interval '1 second' "
            "FROM due WHERE o.id = due.id "
            "RETURNING o.id, o.topic, o.payload, o.blob, o.attempts",
            topics=list(topics),
            limit=limit,
            lease=lease_seconds,
            max_attempts=max_attempts,
        )
    items = [
        OutboxItem(
            id=int(row["id"]),
            topic=str(row["topic"]),
            payload=_load(row["payload"]),
            blob=bytes(row["blob"]) if row["blob"] is not None else None,
            attempts=int(row["attempts"]),
        )
        for row in rows
    ]
    items.sort(key=lambda item: item.id)
    return items


def mark_done(target: Database | Transaction, item_id: int) -> bool:
    """The item was delivered; False if it was already done (or does not exist)."""
    return (
        _execute(
            target,
            "UPDATE outbox SET done_at = now(), last_error = NULL "
            "WHERE id = :id AND done_at IS NULL",
            id=item_id,
        )
        == 1
    )


def mark_failed(
    target: Database | Transaction, item_id: int, error: str, *, backoff_s: int
) -> bool:
    """Delivery failed: retry after `backoff_s`. `error` is redacted and truncated, but callers
    should pass a short description (an exception type), never a response body or a secret."""
    if backoff_s < 0:
        raise ValueError("backoff_s must not be negative")
    text = redact_text(" ".join(error.split()))[:MAX_ERROR_LENGTH]
    return (
        _execute(
            target,
            "UPDATE outbox SET last_error = :error, "
            "available_at = now() + CAST(:backoff AS integer) * interval '1 second' "
            "WHERE id = :id AND done_at IS NULL",
            id=item_id,
            error=text,
            backoff=backoff_s,
        )
        == 1
    )


def prune_done(target: Database | Transaction, *, older_than_days: int, limit: int) -> int:
    """Delete up to `limit` delivered items done more than `older_than_days` ago. Their dedupe
    keys become free again: keep items longer than any producer's dedupe horizon (a month for
    quota alerts)."""
    return _execute(
        target,
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE done_at IS NOT NULL "
        "AND done_at < now() - make_interval(days => :days) LIMIT :limit)",
        days=older_than_days,
        limit=limit,
    )


def _execute(target: Database | Transaction, sql: str, **params: Any) -> int:
    if isinstance(target, Transaction):
        return target.execute(sql, **params)
    with target.transaction() as tx:
        return tx.execute(sql, **params)


def _dump(payload: dict[str, Any]) -> str:
    if not isinstance(payload, dict):
        raise TypeError("payload must be a dict")
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _load(value: Any) -> dict[str, Any]:
    loaded = json.loads(value) if isinstance(value, (str, bytes)) else value
    if not isinstance(loaded, dict):
        raise TypeError("outbox payload is not a JSON object")
    return loaded
