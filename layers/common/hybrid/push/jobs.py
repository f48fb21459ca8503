"""push-ingest's asynchronous triggers: uploaded files (COS) and the minute timer."""

from __future__ import annotations

from typing import Any

from hybrid import audit, idempotency, log
from hybrid.events.context import InvocationContext
from hybrid.events.cos import CosObjectEvent
from hybrid.events.timer import TimerEvent
from hybrid.ingest import uploads
from hybrid.ingest.engine import BatchOutcome
from hybrid.push import archive
from hybrid.push.app import PushServices
from hybrid.push.receipts import create_receipt
from hybrid.push.service import PushContext, write_records
from hybrid.sources import get_source_by_name

UPLOAD_PREFIX = "uploads/"


def handle_cos_event(
    events: list[CosObjectEvent], services: PushServices, ctx: InvocationContext
) -> dict[str, Any]:
    """Ingest each uploaded file. Raises on a failure worth retrying (SCF retries twice);
    a file that cannot be read ends `failed` with its reason instead."""
    logger = log.get_logger("hybrid.push.jobs")
    processed = []
    for event in events:
        if not event.is_created or event.bucket_full_name != services.settings.cos_bucket:
            logger.info("cos event ignored", bucket=event.bucket_full_name, key=event.key)
            continue
        if not event.key.startswith(UPLOAD_PREFIX):
            continue
        try:
            upload = uploads.process_upload(
                services.db,
                services.object_store,
                event.key,
                apply_chunk=lambda tx, upl, records: _apply_chunk(tx, upl, records, ctx),
                on_finish=lambda tx, upl: _record_file_push(tx, upl, ctx),
            )
        except uploads.UploadNotFoundError:
            # Not retryable: no upload owns this object (uploaded without asking first).
            logger.warning("object without an upload ignored", key=event.key)
            continue
        processed.append({"upload_id": upload.id, "status": upload.status})
    return {"processed": processed}


def _record_file_push(tx: Any, upload: Any, ctx: InvocationContext) -> None:
    """The receipt and audit entry of a finished upload, in the transaction that ends it."""
    push = PushContext(tenant_id=upload.tenant_id, actor=upload.actor, request_id=ctx.request_id)
    public = upload.to_public()
    outcome = {
        k: public.get(k)
        for k in (
            "upload_id",
            "status",
            "accepted",
            "rejected",
            "inserted",
            "updated",
            "unchanged",
            "deleted",
            "conflicts",
            "failure",
        )
    }
    create_receipt(
        tx,
        receipt_id=upload.receipt_id,
        tenant_id=upload.tenant_id,
        source=upload.source,
        entity=upload.entity,
        kind="file",
        actor=upload.actor,
        request_id=ctx.request_id,
        idempotency_key=None,
        outcome=outcome,
    )
    audit.record(
        tx,
        tenant_id=upload.tenant_id,
        actor=push.actor,
        action="push.file",
        target_type="receipt",
        target_id=upload.receipt_id,
        request_id=ctx.request_id,
        details={
            "upload_id": upload.id,
            "status": upload.status,
            "accepted": public.get("accepted"),
            "rejected": public.get("rejected"),
        },
    )


def _apply_chunk(tx: Any, upload: Any, records: Any, ctx: InvocationContext) -> BatchOutcome:
    push = PushContext(tenant_id=upload.tenant_id, actor=upload.actor, request_id=ctx.request_id)
    source = get_source_by_name(tx, upload.tenant_id, upload.source)
    return write_records(
        tx,
        push,
        source=source,
        entity=upload.entity,
        strategy=upload.conflict_strategy or source.conflict_strategy,
        records=records,
        receipt_id=upload.receipt_id,
    )


def handle_timer(
    event: TimerEvent, services: PushServices, ctx: InvocationContext
) -> dict[str, Any]:
    """Every minute: archive raw pushes to COS and purge expired idempotency records."""
    archived, failed = archive.sweep(services.db, services.object_store)
    with services.write() as tx:
        purged = idempotency.purge_expired(tx, limit=5000)
    return {"archived": archived, "archive_failed": failed, "idempotency_purged": purged}
