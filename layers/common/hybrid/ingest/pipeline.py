"""The one way records reach `records`, whoever brings them (pushes, files, pulls): count them
against the tenant's quota, then apply them under the conflict strategy, in the caller's
transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from hybrid import quota, tenants
from hybrid.db import Transaction
from hybrid.ingest.engine import BatchOutcome, apply_batch
from hybrid.ingest.models import IncomingRecord, SourceConfig
from hybrid.sources import Source, source_priorities


def store_records(
    tx: Transaction,
    *,
    tenant_id: str,
    source: Source,
    entity: str,
    strategy: str,
    records: Sequence[tuple[int, IncomingRecord]],
    receipt_id: str,
) -> BatchOutcome:
    """Count the records against the tenant's quota (QuotaExceededError), then apply them."""
    now = datetime.now(timezone.utc)
    limits = tenants.get_quota(tx, tenant_id)
    if records:
        quota.consume(
            tx,
            tenant_id=tenant_id,
            records=len(records),
            daily_limit=limits.daily_records,
            monthly_limit=limits.monthly_records,
            now=now,
        )
    priorities = source_priorities(tx, tenant_id) if strategy == "source_priority" else None
    return apply_batch(
        tx,
        tenant_id=tenant_id,
        entity=entity,
        source=SourceConfig(source.name, source.priority, source.conflict_strategy),  # type: ignore[arg-type]
        strategy=strategy,  # type: ignore[arg-type]
        records=records,
        receipt_id=receipt_id,
        source_priorities=priorities,
    )
