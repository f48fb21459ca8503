"""Raw pushes archived to COS through the outbox: the push commits the raw body with its
records, and a timer sweep uploads it later, so a COS outage never fails or loses a push."""

from __future__ import annotations

import gzip
from datetime import datetime, timezone

from hybrid import log, outbox
from hybrid.db import Database, Transaction
from hybrid.push.receipts import mark_archived
from hybrid.storage.port import ObjectStore, StorageError

ARCHIVE_TOPIC = "archive"
# Retry an upload that failed after this many seconds, doubling up to an hour.
BASE_BACKOFF_S = 30
MAX_BACKOFF_S = 3600


def enqueue_raw(
    tx: Transaction, *, tenant_id: str, receipt_id: str, kind: str, raw: bytes, at: datetime
) -> None:
    key = f"raw/{tenant_id}/{at:%Y/%m/%d}/{receipt_id}.{kind}.json.gz"
    outbox.enqueue(
        tx,
        ARCHIVE_TOPIC,
        {"tenant_id": tenant_id, "receipt_id": receipt_id, "key": key},
        dedupe_key=f"archive:{receipt_id}",
        blob=gzip.compress(raw, compresslevel=5, mtime=0),
    )


def sweep(db: Database, store: ObjectStore, *, limit: int = 50) -> tuple[int, int]:
    """Upload due raw pushes; (archived, failed). Safe to run concurrently and repeatedly."""
    logger = log.get_logger("hybrid.push.archive")
    archived = failed = 0
    for item in outbox.claim(db, topics=[ARCHIVE_TOPIC], limit=limit):
        key = str(item.payload["key"])
        try:
            store.put_bytes(
                key,
                item.blob or b"",
                content_type="application/json",
                metadata={"receipt-id": str(item.payload["receipt_id"])},
            )
        except StorageError as exc:
            backoff = min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** max(item.attempts - 1, 0))
            outbox.mark_failed(db, item.id, type(exc).__name__, backoff_s=backoff)
            logger.warning(
                "archive upload failed",
                receipt_id=item.payload["receipt_id"],
                attempts=item.attempts,
                retry_in_s=backoff,
            )
            failed += 1
            continue
        with db.transaction() as tx:
            mark_archived(tx, str(item.payload["receipt_id"]), key)
            outbox.mark_done(tx, item.id)
        archived += 1
    if archived or failed:
        logger.info(
            "archive sweep",
            archived=archived,
            failed=failed,
            at=datetime.now(timezone.utc).isoformat(),
        )
    return archived, failed
