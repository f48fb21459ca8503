"""Signed webhook pushes: verification and signing (re-exported from `hybrid.signing`, the
standard-library part the connector shares) and replay dedupe.

Replays: `remember_fast` (Redis `SET NX EX`) is a hint that spares the write path for an id seen
within the last minutes; `record_message` (PostgreSQL primary key) is the lasting decision, taken
in the same transaction as the record it stores.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

from hybrid import log
from hybrid.db import Transaction
from hybrid.signing import (
    DEFAULT_TOLERANCE_S,
    HEADER_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    MIN_DEDUPE_TTL_S,
    SECRET_PREFIX,
    WebhookMessage,
    WebhookVerificationError,
    decode_secret,
    new_webhook_secret,
    sign,
    signed_headers,
    verify,
)

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "HEADER_ID",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "MIN_DEDUPE_TTL_S",
    "SECRET_PREFIX",
    "WebhookMessage",
    "WebhookVerificationError",
    "decode_secret",
    "existing_receipt",
    "new_webhook_secret",
    "record_message",
    "remember_fast",
    "sign",
    "signed_headers",
    "verify",
]

REDIS_WARNING_INTERVAL_S = 60.0

# --- replay dedupe ---------------------------------------------------------------------------

_last_redis_warning = 0.0
_warning_lock = threading.Lock()


def remember_fast(
    redis_client_factory: Callable[[], Any],
    source_id: str,
    webhook_id: str,
    ttl_s: int = MIN_DEDUPE_TTL_S,
) -> bool:
    """True when this id is new for the source as far as Redis knows (`SET NX EX`).

    False is a hint, not a verdict: the first delivery may still be in flight or may have failed
    before committing, so confirm with `existing_receipt` and, when it finds nothing, process the
    message normally (`record_message` decides). With Redis down this answers True and
    PostgreSQL decides; the outage is logged at most once a minute.
    """
    if ttl_s < MIN_DEDUPE_TTL_S:
        raise ValueError(f"the dedupe ttl must be at least {MIN_DEDUPE_TTL_S} s")
    from hybrid.cache import CacheError, redis_errors

    try:
        with redis_errors():
            client = redis_client_factory()
            first = client.set(_dedupe_key(source_id, webhook_id), b"1", nx=True, ex=ttl_s)
    except CacheError as exc:
        _warn_redis_down(type(exc).__name__)
        return True
    return bool(first)


def _dedupe_key(source_id: str, webhook_id: str) -> str:
    digest = hashlib.sha256(webhook_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"webhook:{{{source_id}}}:{digest}"


def _warn_redis_down(error_type: str) -> None:
    global _last_redis_warning
    now = time.monotonic()
    with _warning_lock:
        if _last_redis_warning and now - _last_redis_warning < REDIS_WARNING_INTERVAL_S:
            return
        _last_redis_warning = now
    log.get_logger("hybrid.webhooks").warning(
        "redis unavailable: webhook replay dedupe falls back to postgresql",
        error_type=error_type,
    )


def record_message(
    tx: Transaction, *, tenant_id: str, source_id: str, webhook_id: str, receipt_id: str
) -> bool:
    """Store the id in the transaction that stores the message; False when it was stored
    before (a concurrent first delivery makes this wait for it, then answer False)."""
    inserted = tx.execute(
        "INSERT INTO webhook_messages (tenant_id, source_id, webhook_id, receipt_id) "
        "VALUES (:tenant_id, :source_id, :webhook_id, :receipt_id) "
        "ON CONFLICT (source_id, webhook_id) DO NOTHING",
        tenant_id=tenant_id,
        source_id=source_id,
        webhook_id=webhook_id,
        receipt_id=receipt_id,
    )
    return inserted == 1


def existing_receipt(tx: Transaction, source_id: str, webhook_id: str) -> str | None:
    """The receipt of the stored message with this id, if any."""
    value = tx.scalar(
        "SELECT receipt_id FROM webhook_messages "
        "WHERE source_id = :source_id AND webhook_id = :webhook_id",
        source_id=source_id,
        webhook_id=webhook_id,
    )
    return None if value is None else str(value)
