"""push-ingest routes: batches, webhooks, file uploads, receipts and conflicts."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from hybrid import idempotency, tenants, webhooks
from hybrid.auth import Principal, require
from hybrid.http import (
    BadRequestError,
    RateLimitedError,
    Response,
    Router,
    UnprocessableError,
    json_response,
)
from hybrid.http.problem import ConflictError, ProblemError
from hybrid.http.response import JSON_CONTENT_TYPE, dump_json
from hybrid.http.router import Call
from hybrid.ingest import conflicts, uploads
from hybrid.ingest.models import validate_records
from hybrid.problems import DOMAIN_ERROR_MAP
from hybrid.push.app import PushServices
from hybrid.push.receipts import get_receipt, new_receipt_id
from hybrid.push.schemas import (
    ConflictQuery,
    FileUploadRequest,
    PushBatchRequest,
    ResolveConflictRequest,
)
from hybrid.push.service import (
    PushContext,
    batch_outcome_body,
    ensure_push_source,
    record_push,
    write_records,
)
from hybrid.quota import QuotaExceededError
from hybrid.ratelimit import Limit
from hybrid.sources import get_source, webhook_secrets

router = Router()

DEFAULT_TENANT_RPM = 1200
DEFAULT_KEY_RPM = 600
UPLOAD_URL_TTL_S = 3600
BATCH_SCOPE = "push.batch"


def _quota_exceeded(exc: Exception) -> ProblemError:
    assert isinstance(exc, QuotaExceededError)
    reset = exc.reset_at.isoformat().replace("+00:00", "Z")
    return RateLimitedError(
        f"{exc.which} record quota of {exc.limit} exhausted; it resets at {reset}",
        retry_after=exc.retry_after_s,
    )


def _in_flight(exc: Exception) -> ProblemError:
    assert isinstance(exc, idempotency.IdempotencyInFlightError)
    return ConflictError(
        "a request with this Idempotency-Key is still being processed",
        headers={"Retry-After": str(max(1, exc.retry_after))},
    )


ERROR_MAP = {
    **DOMAIN_ERROR_MAP,
    conflicts.MergeDataInvalidError: lambda exc: UnprocessableError(
        "the merged data failed validation", errors=getattr(exc, "errors", None)
    ),
    QuotaExceededError: _quota_exceeded,
    idempotency.IdempotencyInFlightError: _in_flight,
    idempotency.IdempotencyMismatchError: lambda _exc: UnprocessableError(
        "this Idempotency-Key was used with a different request body"
    ),
    idempotency.IdempotencyKeyError: lambda exc: BadRequestError(str(exc)),
    idempotency.IdempotencyLeaseLostError: lambda _exc: ConflictError(
        "the request took longer than its idempotency lease; retry it",
        headers={"Retry-After": "1"},
    ),
}


def _context(call: Call[PushServices], idempotency_key: str | None = None) -> PushContext:
    principal: Principal = call.principal
    assert principal.tenant_id is not None
    return PushContext(
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        request_id=call.request.request_id,
        idempotency_key=idempotency_key,
    )


def _enforce_rate_limit(
    services: PushServices, tenant_id: str, key_id: str | None
) -> dict[str, str]:
    with services.read() as tx:
        rpm = tenants.get_quota(tx, tenant_id).rpm
    limits = [Limit("tenant", rpm or DEFAULT_TENANT_RPM)]
    if key_id:
        limits.append(Limit("key", DEFAULT_KEY_RPM, partition=key_id))
    decision = services.rate_limiter.check(tenant_id, limits)
    headers = decision.headers()
    if not decision.allowed:
        raise RateLimitedError(
            "rate limit exceeded", retry_after=decision.retry_after_s, headers=headers
        )
    return headers


@router.post("/api/v1/sync/push/batch")
@require("ingest:write")
def push_batch(call: Call[PushServices]) -> Response:
    services, request = call.services, call.request
    ctx = _context(call, request.header("idempotency-key"))
    limit_headers = _enforce_rate_limit(services, ctx.tenant_id, call.principal.key_id)
    # Each record's data is depth-checked by validate_records; the envelope is shallow.
    body = request.model(PushBatchRequest, check_depth=False)
    reservation = None
    if ctx.idempotency_key is not None:
        fingerprint = idempotency.request_fingerprint(request.method, request.path, request.body)
        started = idempotency.begin(
            services.db,
            tenant_id=ctx.tenant_id,
            scope=BATCH_SCOPE,
            key=ctx.idempotency_key,
            fingerprint=fingerprint,
        )
        if isinstance(started, idempotency.Replay):
            return Response(
                started.status,
                started.body,
                {**started.headers, **limit_headers, "Idempotent-Replayed": "true"},
            )
        reservation = started
    try:
        response = _store_batch(call, ctx, body, reservation)
    except BaseException:
        if reservation is not None:
            idempotency.release(services.db, reservation)
        raise
    return response.with_headers(limit_headers)


def _store_batch(
    call: Call[PushServices], ctx: PushContext, body: PushBatchRequest, reservation: Any
) -> Response:
    valid, rejections = validate_records(body.records)
    rejected: list[dict[str, Any]] = [{"index": r.index, "errors": r.errors} for r in rejections]
    if body.atomic and rejections:
        raise UnprocessableError(
            "atomic batch rejected: at least one record is invalid; nothing was stored",
            errors=[
                {"loc": ["records", str(r.index), *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for r in rejections
                for e in r.errors
            ],
        )
    entity = body.entity or body.source
    receipt_id = new_receipt_id()
    with call.services.write() as tx:
        source = ensure_push_source(tx, ctx.tenant_id, body.source)
        strategy = body.conflict_strategy or source.conflict_strategy
        outcome = write_records(
            tx,
            ctx,
            source=source,
            entity=entity,
            strategy=strategy,
            records=valid,
            receipt_id=receipt_id,
        )
        result = batch_outcome_body(
            receipt_id,
            outcome,
            accepted=len(valid),
            rejected=rejected,
            keys={index: record.key for index, record in valid},
        )
        record_push(
            tx,
            ctx,
            receipt_id=receipt_id,
            source=body.source,
            entity=entity,
            kind="batch",
            body=result,
            raw=call.request.body,
        )
        payload = dump_json(result)
        headers = {"Content-Type": JSON_CONTENT_TYPE}
        if reservation is not None:
            idempotency.complete(tx, reservation, status=200, headers=headers, body=payload)
    return Response(200, payload, headers)


@router.post("/api/v1/sync/push/webhook/{source_id}")
def push_webhook(call: Call[PushServices]) -> Response:
    """Standard Webhooks: verified with the source's secrets before anything is parsed."""
    services, request = call.services, call.request
    with services.read() as tx:
        source = get_source(tx, call.params["source_id"], tenant_id=None)
        secrets = webhook_secrets(tx, services.secret_box, source)
    message = webhooks.verify(request.headers, request.body, secrets)
    limit_headers = _enforce_rate_limit(services, source.tenant_id, None)
    ctx = PushContext(
        tenant_id=source.tenant_id, actor=f"webhook:{source.id}", request_id=request.request_id
    )
    if not webhooks.remember_fast(services.redis, source.id, message.id):
        # Seen recently; but a first delivery that failed before committing left no receipt,
        # so only an existing receipt makes this a duplicate. PostgreSQL decides otherwise.
        with services.read() as tx:
            if webhooks.existing_receipt(tx, source.id, message.id) is not None:
                return _duplicate_webhook(services, source.id, message.id, limit_headers)
    document = _webhook_document(request.body)
    key = _webhook_key(document, source.webhook_key_path, message.id)
    received = datetime.fromtimestamp(message.timestamp, timezone.utc)
    valid, rejections = validate_records(
        [
            {
                "key": key,
                "op": "upsert",
                "updated_at": received.isoformat(),
                "data": document if isinstance(document, dict) else {"value": document},
            }
        ]
    )
    if rejections:
        raise UnprocessableError(
            "the webhook payload cannot be stored as a record", errors=rejections[0].errors
        )
    receipt_id = new_receipt_id()
    with services.write() as tx:
        fresh = webhooks.record_message(
            tx,
            tenant_id=source.tenant_id,
            source_id=source.id,
            webhook_id=message.id,
            receipt_id=receipt_id,
        )
        if fresh:
            outcome = write_records(
                tx,
                ctx,
                source=source,
                entity=source.name,
                strategy=source.conflict_strategy,
                records=valid,
                receipt_id=receipt_id,
            )
            result = batch_outcome_body(receipt_id, outcome, accepted=1, rejected=[], keys={0: key})
            record_push(
                tx,
                ctx,
                receipt_id=receipt_id,
                source=source.name,
                entity=source.name,
                kind="webhook",
                body=result,
                raw=request.body,
            )
    if not fresh:
        return _duplicate_webhook(services, source.id, message.id, limit_headers)
    return json_response(
        {"receipt_id": receipt_id, "duplicate": False, "status": result["results"][0]["status"]},
        headers=limit_headers,
    )


def _duplicate_webhook(
    services: PushServices, source_id: str, webhook_id: str, headers: dict[str, str]
) -> Response:
    with services.read() as tx:
        receipt_id = webhooks.existing_receipt(tx, source_id, webhook_id)
    return json_response({"receipt_id": receipt_id, "duplicate": True}, headers=headers)


def _webhook_document(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequestError("the webhook body is not valid JSON") from None


def _webhook_key(document: Any, key_path: str | None, webhook_id: str) -> str:
    """The record key: the value at the source's key path (dotted), else the webhook id."""
    if not key_path:
        return webhook_id
    value = document
    for part in key_path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise UnprocessableError(f"the webhook body has no value at `{key_path}`")
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise UnprocessableError(f"the value at `{key_path}` must be a string or an integer")
    return str(value)


@router.post("/api/v1/sync/push/file")
@require("ingest:write")
def create_file_upload(call: Call[PushServices]) -> Response:
    ctx = _context(call)
    services = call.services
    limit_headers = _enforce_rate_limit(services, ctx.tenant_id, call.principal.key_id)
    body = call.request.model(FileUploadRequest)
    with services.write() as tx:
        ensure_push_source(tx, ctx.tenant_id, body.source)
        upload = uploads.create_upload(
            tx,
            tenant_id=ctx.tenant_id,
            source=body.source,
            entity=body.entity or body.source,
            filename=body.filename,
            fmt=body.format,
            compression=body.compression,
            size=body.size,
            conflict_strategy=body.conflict_strategy,
            actor=ctx.actor,
        )
    url = services.object_store.presign_put(upload.object_key, expires_in=UPLOAD_URL_TTL_S)
    return json_response(
        {
            "upload_id": upload.id,
            "upload_url": url,
            "method": "PUT",
            "expires_in": UPLOAD_URL_TTL_S,
        },
        201,
        {**limit_headers, "Cache-Control": "no-store"},
    )


@router.get("/api/v1/sync/push/file/{upload_id}")
@require(any_of=("ingest:write", "status:read"))
def get_file_upload(call: Call[PushServices]) -> Response:
    ctx = _context(call)
    with call.services.read() as tx:
        upload = uploads.get_upload(tx, ctx.tenant_id, call.params["upload_id"])
    return json_response(upload.to_public())


@router.get("/api/v1/sync/receipts/{receipt_id}")
@require(any_of=("ingest:write", "status:read"))
def read_receipt(call: Call[PushServices]) -> Response:
    ctx = _context(call)
    with call.services.read() as tx:
        receipt = get_receipt(tx, ctx.tenant_id, call.params["receipt_id"])
    return json_response(receipt.to_public())


@router.get("/api/v1/sync/conflicts")
@require(any_of=("ingest:write", "status:read"))
def list_conflicts(call: Call[PushServices]) -> Response:
    ctx = _context(call)
    query = call.request.query_model(ConflictQuery)
    with call.services.read() as tx:
        found = conflicts.list_conflicts(
            tx,
            tenant_id=ctx.tenant_id,
            status=query.status,
            limit=query.limit,
            before=query.before,
        )
    next_before = found[-1].id if len(found) == query.limit else None
    return json_response({"conflicts": [c.to_public() for c in found], "next_before": next_before})


@router.post("/api/v1/sync/conflicts/{conflict_id}/resolve")
@require("ingest:write")
def resolve_conflict(call: Call[PushServices]) -> Response:
    ctx = _context(call)
    body = call.request.model(ResolveConflictRequest)
    if body.resolution == "merge" and body.data is None:
        raise UnprocessableError("a merge resolution needs the merged `data`")
    with call.services.write() as tx:
        resolved = conflicts.resolve_conflict(
            tx,
            tenant_id=ctx.tenant_id,
            conflict_id=call.params["conflict_id"],
            resolution=body.resolution,
            data=body.data,
            actor=ctx.actor,
        )
        from hybrid import audit

        audit.record(
            tx,
            tenant_id=ctx.tenant_id,
            actor=ctx.actor,
            action="conflict.resolve",
            target_type="conflict",
            target_id=resolved.id,
            request_id=ctx.request_id,
            details={"resolution": body.resolution},
        )
    return json_response(resolved.to_public())
