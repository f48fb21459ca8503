"""pull-trigger routes: sync jobs and their executions. Changes write an audit entry in the
same transaction."""

from __future__ import annotations

from typing import Any

from hybrid import audit
from hybrid.auth import require
from hybrid.http import Response, Router, json_response, no_content
from hybrid.http.problem import ConflictError
from hybrid.http.router import Call
from hybrid.problems import DOMAIN_ERROR_MAP
from hybrid.pull.app import PullServices
from hybrid.pull.runner import start_job
from hybrid.pull.schemas import (
    CreateJobRequest,
    ExecutionsQuery,
    RunJobRequest,
    UpdateJobRequest,
)
from hybrid.sync import executions, jobs

router = Router()

ERROR_MAP = {
    **DOMAIN_ERROR_MAP,
    jobs.JobRunningError: lambda exc: ConflictError(str(exc), headers={"Retry-After": "30"}),
}


def _audit(call: Call[PullServices], tx: Any, action: str, job_id: str, **details: Any) -> None:
    audit.record(
        tx,
        tenant_id=call.principal.tenant_id,
        actor=call.principal.actor,
        action=action,
        target_type="sync_job",
        target_id=job_id,
        request_id=call.request.request_id,
        details=details,
    )


@router.post("/api/v1/sync/jobs")
@require("jobs:write")
def create_job(call: Call[PullServices]) -> Response:
    body = call.request.model(CreateJobRequest)
    spec = jobs.JobSpec(
        name=body.name,
        connector_id=body.connector_id,
        source=body.source,
        table=body.table,
        cursor_column=body.cursor_column,
        key_columns=tuple(body.key_columns),
        mode=body.mode,
        schedule=body.schedule,
        masking=body.masking,
        conflict_strategy=body.conflict_strategy,
        overlap_s=body.overlap_s,
        page_rows=body.page_rows,
    )
    with call.services.write() as tx:
        job = jobs.create_job(tx, call.principal.tenant_id, spec)
        _audit(call, tx, "sync_job.create", job.id, name=job.name, table=job.table)
    return json_response(job.to_public(), 201)


@router.get("/api/v1/sync/jobs")
@require(any_of=("status:read", "jobs:write"))
def list_jobs(call: Call[PullServices]) -> Response:
    with call.services.read() as tx:
        found = jobs.list_jobs(tx, call.principal.tenant_id)
    return json_response({"jobs": [job.to_public() for job in found]})


@router.get("/api/v1/sync/jobs/{job_id}")
@require(any_of=("status:read", "jobs:write"))
def get_job(call: Call[PullServices]) -> Response:
    with call.services.read() as tx:
        job = jobs.get_job(tx, call.params["job_id"], tenant_id=call.principal.tenant_id)
    return json_response(job.to_public())


@router.patch("/api/v1/sync/jobs/{job_id}")
@require("jobs:write")
def update_job(call: Call[PullServices]) -> Response:
    body = call.request.model(UpdateJobRequest)
    changes = body.model_dump(exclude_unset=True)
    with call.services.write() as tx:
        job = jobs.update_job(
            tx, call.params["job_id"], tenant_id=call.principal.tenant_id, changes=changes
        )
        _audit(call, tx, "sync_job.update", job.id, changed=sorted(changes))
    return json_response(job.to_public())


@router.delete("/api/v1/sync/jobs/{job_id}")
@require("jobs:write")
def delete_job(call: Call[PullServices]) -> Response:
    with call.services.write() as tx:
        job = jobs.delete_job(tx, call.params["job_id"], tenant_id=call.principal.tenant_id)
        _audit(call, tx, "sync_job.delete", job.id, name=job.name)
    return no_content()


def _set_paused(call: Call[PullServices], paused: bool) -> Response:
    with call.services.write() as tx:
        job = jobs.set_paused(
            tx, call.params["job_id"], tenant_id=call.principal.tenant_id, paused=paused
        )
        _audit(call, tx, "sync_job.pause" if paused else "sync_job.resume", job.id)
    return json_response(job.to_public())


@router.post("/api/v1/sync/jobs/{job_id}/pause")
@require("jobs:write")
def pause_job(call: Call[PullServices]) -> Response:
    return _set_paused(call, True)


@router.post("/api/v1/sync/jobs/{job_id}/resume")
@require("jobs:write")
def resume_job(call: Call[PullServices]) -> Response:
    return _set_paused(call, False)


@router.post("/api/v1/sync/jobs/{job_id}/run")
@require("jobs:write")
def run_job(call: Call[PullServices]) -> Response:
    """Start now (202); 409 while the job runs. A tunnel pull proceeds on the next tick."""
    body = call.request.model(RunJobRequest) if call.request.body.strip() else RunJobRequest()
    job_id = call.params["job_id"]
    tenant_id = call.principal.tenant_id
    with call.services.read() as tx:
        jobs.get_job(tx, job_id, tenant_id=tenant_id)
    execution = start_job(
        call.services, job_id, tenant_id=tenant_id, trigger="manual", mode=body.mode
    )
    with call.services.write() as tx:
        _audit(call, tx, "sync_job.run", job_id, execution_id=execution.id, mode=execution.mode)
    return json_response(
        {"execution_id": execution.id, "status": execution.status, "mode": execution.mode}, 202
    )


@router.get("/api/v1/sync/jobs/{job_id}/executions")
@require(any_of=("status:read", "jobs:write"))
def list_executions(call: Call[PullServices]) -> Response:
    query = call.request.query_model(ExecutionsQuery)
    with call.services.read() as tx:
        job = jobs.get_job(tx, call.params["job_id"], tenant_id=call.principal.tenant_id)
        found = executions.list_executions(tx, job.id, limit=query.limit)
    return json_response([execution.to_public() for execution in found])
