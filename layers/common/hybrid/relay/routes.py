"""connector-relay routes (``connector/PROTOCOL.md``, Relay transport).

Both routes verify the connector's signature over the request line and the raw body before
anything else; an unknown connector and a bad signature look the same (401). Job lists are
signed back, so a connector only runs work that came from the cloud.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from hybrid import log
from hybrid.connectors import registry
from hybrid.connectors import relay as relay_jobs
from hybrid.connectors.protocol import ProtocolError, ResultChunk, decompress
from hybrid.db import Transaction
from hybrid.http import Response, Router
from hybrid.http.problem import (
    BadRequestError,
    ConflictError,
    PayloadTooLargeError,
    UnauthorizedError,
    UnprocessableError,
)
from hybrid.http.response import dump_json
from hybrid.http.router import Call
from hybrid.problems import DOMAIN_ERROR_MAP
from hybrid.quota import QuotaExceededError
from hybrid.relay.app import RelayServices
from hybrid.signing import (
    HEADER_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    WebhookVerificationError,
    signed_headers,
    verify_request,
)
from hybrid.sync import executions
from hybrid.sync.jobs import get_job

router = Router()
logger = log.get_logger("hybrid.relay")

MAX_WAIT_S = 25
DEFAULT_WAIT_S = 20
# A relay pull asks for this many pages' worth of rows per lease; each chunk is a checkpoint.
PAGES_PER_LEASE = 10
MAX_ROWS_PER_LEASE = 50_000
MAX_CHUNK_BYTES = 6 * 1024 * 1024
MAX_CHUNK_DECOMPRESSED = 64 * 1024 * 1024

ERROR_MAP = {
    **DOMAIN_ERROR_MAP,
    relay_jobs.ChunkRejectedError: lambda exc: ConflictError(str(exc)),
    executions.StaleFenceError: lambda exc: ConflictError(str(exc)),
    executions.ExecutionClosedError: lambda exc: ConflictError(str(exc)),
}


def _target(call: Call[RelayServices]) -> str:
    query = call.request.query
    pairs = [(name, value) for name in sorted(query) for value in query[name]]
    return call.request.path + (f"?{urlencode(pairs)}" if pairs else "")


def _authenticate(call: Call[RelayServices]) -> str:
    """The connector's secret, once the request's signature verified with it."""
    connector_id = call.params["connector_id"]
    if not all(
        call.request.header(name) for name in (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)
    ):
        raise UnauthorizedError("missing connector signature")  # no store lookup for junk
    try:
        with call.services.read() as tx:
            secret = registry.connector_secret(tx, call.services.secret_box, connector_id)
    except registry.ConnectorNotFoundError:
        raise UnauthorizedError("invalid connector signature") from None
    try:
        verify_request(
            call.request.headers, call.request.method, _target(call), call.request.body, [secret]
        )
    except WebhookVerificationError as exc:
        logger.info("connector signature refused", reason=exc.reason, connector_id=connector_id)
        raise UnauthorizedError("invalid connector signature") from None
    return secret


def _signed_json(secret: str, body: dict[str, Any], status: int = 200) -> Response:
    payload = dump_json(body)
    headers = signed_headers(secret, f"msg_{uuid.uuid4().hex}", int(time.time()), payload)
    headers["Content-Type"] = "application/json"
    headers["Cache-Control"] = "no-store"
    return Response(status, payload, headers)


def _int_header(call: Call[RelayServices], name: str) -> int:
    value = call.request.header(name) or "0"
    return int(value) if value.isdigit() and len(value) < 10 else 0


@router.get("/api/v1/connectors/{connector_id}/jobs")
def poll_jobs(call: Call[RelayServices]) -> Response:
    """Long-poll for jobs; every poll is a heartbeat with the connector's version and spool."""
    secret = _authenticate(call)
    connector_id = call.params["connector_id"]
    raw_wait = call.request.query_value("wait")
    if raw_wait is not None and not raw_wait.isdigit():
        raise BadRequestError("wait must be a whole number of seconds")
    wait = min(int(raw_wait) if raw_wait else DEFAULT_WAIT_S, MAX_WAIT_S)
    instance = (call.request.header("x-connector-instance") or "unknown")[:64]
    if call.request.query_value("peek") == "1":
        # `doctor`: the signature and the clock, with no lease taken and no heartbeat.
        now = datetime.now(timezone.utc).isoformat()
        return _signed_json(secret, {"server_time": now, "jobs": []})
    deadline = time.monotonic() + wait
    first = True
    jobs: list[dict[str, Any]] = []
    while True:
        with call.services.write() as tx:
            if first:
                relay_jobs.heartbeat(
                    tx,
                    connector_id,
                    version=call.request.header("x-connector-version"),
                    instance=instance,
                    spool=_int_header(call, "x-spool-depth"),
                )
                first = False
            for job in relay_jobs.lease(tx, connector_id, instance=instance):
                handed = _hand_out(tx, job)
                if handed is not None:
                    jobs.append(handed)
        remaining = deadline - time.monotonic()
        if jobs or remaining <= 0:
            break
        relay_jobs.wait_for_wake(call.services.redis, connector_id, remaining)
    return _signed_json(
        secret,
        {"server_time": datetime.now(timezone.utc).isoformat(), "jobs": jobs},
    )


def _hand_out(tx: Transaction, job: relay_jobs.RelayJobRow) -> dict[str, Any] | None:
    """The job as the connector sees it; a pull's query is built from what is stored now."""
    body: dict[str, Any] = {
        "job_id": job.id,
        "kind": "ping" if job.kind == "ping" else "query",
        "attempt": job.attempt,
        "first_seq": job.next_seq,
        "chunk_rows": 5000,
        "query": None,
        "lease_expires_at": job.leased_until.isoformat() if job.leased_until else None,
    }
    if job.kind == "query":
        body["query"] = job.payload.get("query")
        body["chunk_rows"] = int(job.payload.get("chunk_rows") or 5000)
    elif job.kind == "pull":
        assert job.execution_id is not None
        execution = executions.get_execution(tx, job.execution_id)
        if execution.status != "running":
            relay_jobs.close(tx, job.id, status="cancelled")
            return None
        sync_job = get_job(tx, execution.job_id, tenant_id=None)
        limit = min(MAX_ROWS_PER_LEASE, PAGES_PER_LEASE * sync_job.page_rows)
        body["chunk_rows"] = sync_job.page_rows
        body["query"] = executions.next_page_request(tx, execution, limit=limit).to_json()
        tx.execute(
            "UPDATE sync_executions SET progressed_at = now() WHERE id = :id", id=execution.id
        )
    return body


@router.post("/api/v1/connectors/{connector_id}/jobs/{job_id}/result")
def post_result(call: Call[RelayServices]) -> Response:
    """One result chunk; idempotent by (job_id, seq). A pull's rows are stored at once."""
    if len(call.request.body) > MAX_CHUNK_BYTES:
        raise PayloadTooLargeError("a result chunk is at most 6 MB as sent")
    _authenticate(call)
    connector_id, job_id = call.params["connector_id"], call.params["job_id"]
    try:
        raw = decompress(
            call.request.body,
            call.request.header("content-encoding") or "identity",
            max_bytes=MAX_CHUNK_DECOMPRESSED,
        )
        chunk = ResultChunk.from_json(json.loads(raw))
    except ProtocolError as exc:
        raise UnprocessableError(str(exc)) from None
    except ValueError:
        raise BadRequestError("the chunk is not valid JSON") from None
    closed_reason: str | None = None
    requeued = False
    with call.services.write() as tx:
        job = relay_jobs.lock_job(tx, job_id, connector_id)
        if not relay_jobs.check_chunk(tx, job, seq=chunk.seq, attempt=chunk.attempt):
            return _accepted(duplicate=True)
        if job.kind == "pull":
            closed_reason, requeued = _store_pull_chunk(tx, job, chunk)
        else:
            relay_jobs.record_chunk(
                tx, job, seq=chunk.seq, attempt=chunk.attempt, row_count=chunk.row_count, body=raw
            )
            if chunk.done:
                relay_jobs.close(
                    tx,
                    job.id,
                    status="failed" if chunk.error else "done",
                    result={"error": chunk.error, "health": chunk.health, "chunks": chunk.seq + 1},
                )
    if closed_reason is not None:
        with call.services.write() as tx:
            relay_jobs.close(tx, job_id, status="cancelled")
        raise ConflictError(closed_reason)
    if requeued:
        relay_jobs.wake(call.services.redis, connector_id)
    return _accepted(duplicate=False)


def _store_pull_chunk(
    tx: Transaction, job: relay_jobs.RelayJobRow, chunk: ResultChunk
) -> tuple[str | None, bool]:
    """Store the chunk's rows in the job's execution. Returns the reason when the job was
    closed under the connector, and whether the job was queued again for its next page."""
    assert job.execution_id is not None
    assert job.fence is not None
    error = None
    if chunk.error:
        error = f"{chunk.error.get('code')}: {chunk.error.get('message', '')}"[:500]
    more = not chunk.done or chunk.truncated
    savepoint = "chunk"
    tx.execute(f"SAVEPOINT {savepoint}")
    try:
        result = executions.store_page(
            tx,
            job.execution_id,
            fence=job.fence,
            rows=chunk.rows,
            cursor=chunk.cursor,
            skipped=chunk.skipped,
            more=more and error is None,
            error=error,
        )
    except (executions.StaleFenceError, executions.ExecutionClosedError) as exc:
        tx.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
        return str(exc), False
    except QuotaExceededError:
        tx.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
        executions.finish(tx, job.execution_id, status="failed", error="quota exceeded")
        relay_jobs.close(tx, job.id, status="failed")
        return "the tenant's record quota is exhausted", False
    relay_jobs.record_chunk(
        tx, job, seq=chunk.seq, attempt=chunk.attempt, row_count=chunk.row_count
    )
    if result.finished:
        relay_jobs.close(tx, job.id, status="done" if result.status != "failed" else "failed")
    elif chunk.done:
        relay_jobs.requeue(tx, job.id)
        return None, True
    return None, False


def _accepted(*, duplicate: bool) -> Response:
    return Response(
        200,
        dump_json({"accepted": True, "duplicate": duplicate}),
        {"Content-Type": "application/json"},
    )
