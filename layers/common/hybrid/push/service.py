"""The write paths of push-ingest. Each push commits its records, usage, receipt, audit entry,
raw-body archive item and (when keyed) idempotency record in ONE transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from hybrid import audit
from hybrid.db import Transaction
from hybrid.ingest.engine import BatchOutcome
from hybrid.ingest.models import IncomingRecord
from hybrid.ingest.pipeline import store_records
from hybrid.push import archive
from hybrid.push.receipts import create_receipt
from hybrid.sources import Source, ensure_source


@dataclass(frozen=True)
class PushContext:
    tenant_id: str
    actor: str
    request_id: str | None
    idempotency_key: str | None = None


def write_records(
    tx: Transaction,
    ctx: PushContext,
    *,
    source: Source,
    entity: str,
    strategy: str,
    records: Sequence[tuple[int, IncomingRecord]],
    receipt_id: str,
) -> BatchOutcome:
    """Count the records against the tenant's quota, then apply them."""
    return store_records(
        tx,
        tenant_id=ctx.tenant_id,
        source=source,
        entity=entity,
        strategy=strategy,
        records=records,
        receipt_id=receipt_id,
    )


def batch_outcome_body(
    receipt_id: str,
    outcome: BatchOutcome,
    *,
    accepted: int,
    rejected: list[dict[str, Any]],
    keys: dict[int, str],
) -> dict[str, Any]:
    counts = outcome.to_counts()
    results: list[dict[str, Any]] = [
        {"index": r.index, "key": keys.get(r.index), "status": r.status}
        | ({"conflict_id": r.conflict_id} if r.conflict_id else {})
        for r in outcome.results
    ]
    results.extend({"index": r["index"], "status": "rejected"} for r in rejected)
    results.sort(key=lambda item: int(item["index"]))
    return {
        "receipt_id": receipt_id,
        "accepted": accepted,
        "inserted": counts["inserted"],
        "updated": counts["updated"],
        "unchanged": counts["unchanged"],
        "deleted": counts["deleted"],
        "conflicts": counts["conflicts"],
        "rejected": rejected,
        "results": results,
    }


def record_push(
    tx: Transaction,
    ctx: PushContext,
    *,
    receipt_id: str,
    source: str,
    entity: str,
    kind: str,
    body: dict[str, Any],
    raw: bytes,
) -> None:
    """The receipt, the audit entry and the raw body's archive item of one push."""
    summary: dict[str, Any] = {
        k: body[k]
        for k in ("accepted", "inserted", "updated", "unchanged", "deleted", "conflicts")
        if k in body
    }
    create_receipt(
        tx,
        receipt_id=receipt_id,
        tenant_id=ctx.tenant_id,
        source=source,
        entity=entity,
        kind=kind,
        actor=ctx.actor,
        request_id=ctx.request_id,
        idempotency_key=ctx.idempotency_key,
        outcome={k: v for k, v in body.items() if k != "receipt_id"},
    )
    audit.record(
        tx,
        tenant_id=ctx.tenant_id,
        actor=ctx.actor,
        action=f"push.{kind}",
        target_type="receipt",
        target_id=receipt_id,
        request_id=ctx.request_id,
        details={
            "source": source,
            "entity": entity,
            **summary,
            "rejected": len(body.get("rejected", [])),
        },
    )
    archive.enqueue_raw(
        tx,
        tenant_id=ctx.tenant_id,
        receipt_id=receipt_id,
        kind=kind,
        raw=raw,
        at=datetime.now(timezone.utc),
    )


def ensure_push_source(tx: Transaction, tenant_id: str, name: str) -> Source:
    return ensure_source(tx, tenant_id, name)
