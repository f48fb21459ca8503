"""Starting and driving pulls.

- `start_job`: under the job's Redis lease, open an execution (PostgreSQL refuses a second
  one); a relay connector gets a relay job and a wake-up, and drives the pull itself from
  then on, one chunk per request to connector-relay.
- `drive_tunnel`: a tunnel pull is driven from here: each page is asked of the connector,
  then stored with the position and the cursor in one transaction under the fence, until the
  table is read or the invocation's time is nearly up (the next tick resumes).
- `handle_timer` (every minute): fail relay pulls whose connector went silent, start due jobs,
  drive running tunnel pulls.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from hybrid import locks, log
from hybrid.connectors import registry
from hybrid.connectors import relay as relay_jobs
from hybrid.connectors.tunnel import ConnectorError, Page, TunnelClient
from hybrid.events.context import InvocationContext
from hybrid.pull.app import PullServices
from hybrid.quota import QuotaExceededError
from hybrid.sync import executions, keyset
from hybrid.sync.jobs import JobRunningError, due_job_ids, get_job

logger = log.get_logger("hybrid.pull")

LEASE_TTL_MS = 30_000
# A relay pull with no chunk and no lease for this long has lost its connector.
RELAY_STALE_S = 600
# Stop starting pages when less than this is left of the invocation.
SAFETY_MARGIN_S = 8.0
DUE_JOBS_PER_TICK = 200
# Finished relay jobs and their chunk ledger are kept this long (a week), then deleted.
RELAY_RETENTION_S = 7 * 86400


def _lease_name(job_id: str) -> str:
    return f"syncjob:{job_id}"


def start_job(
    services: PullServices,
    job_id: str,
    *,
    tenant_id: str | None,
    trigger: str,
    mode: str | None = None,
) -> executions.Execution:
    """Open an execution; JobRunningError when one runs (or another starter holds the lease)."""
    lease = locks.acquire(services.redis, _lease_name(job_id), LEASE_TTL_MS)
    if lease is None:
        raise JobRunningError()
    try:
        with services.write() as tx:
            job, execution = executions.start(
                tx, job_id, tenant_id=tenant_id, trigger=trigger, mode=mode
            )
            if execution.transport == "relay":
                relay_jobs.enqueue(
                    tx,
                    connector_id=job.connector_id,
                    tenant_id=job.tenant_id,
                    kind="pull",
                    execution_id=execution.id,
                    fence=execution.fence,
                )
        if execution.transport == "relay":
            relay_jobs.wake(services.redis, job.connector_id)
        logger.info(
            "pull started", job_id=job_id, execution_id=execution.id, transport=execution.transport
        )
        return execution
    finally:
        lease.release()


def drive_tunnel(services: PullServices, execution_id: str, deadline: float) -> str | None:
    """Pull pages of a running tunnel execution until it ends or `deadline` (monotonic) nears;
    returns the execution's status when it ended here, else None.

    While a page is stored, the next one is already being read from the connector (its start
    is the stored page's end, computed the way `store_page` computes the position).
    """
    with services.read() as tx:
        job_id = executions.get_execution(tx, execution_id).job_id
    lease = locks.acquire(services.redis, _lease_name(job_id), LEASE_TTL_MS)
    if lease is None:
        return None  # another driver is on it
    pool = ThreadPoolExecutor(1, thread_name_prefix="pull-prefetch")
    try:
        with services.write() as tx:
            execution = executions.take_charge(tx, execution_id)
            job = get_job(tx, execution.job_id, tenant_id=None)
            _transport, dialect = executions.connector_transport(tx, job)
            connector = registry.get_connector(tx, job.connector_id, tenant_id=None)
            secret = registry.connector_secret(tx, services.secret_box, job.connector_id)
        if not connector.endpoint:
            return _fail(services, execution_id, "the tunnel connector has no endpoint")
        client = TunnelClient(connector.endpoint, secret)
        columns = keyset.keyset_columns(execution.mode, job.cursor_column, list(job.key_columns))

        def fetch(position: dict[str, Any] | None) -> Page:
            return client.query(
                executions.page_request(
                    job,
                    mode=execution.mode,
                    dialect=dialect,
                    position=position,
                    limit=job.page_rows,
                )
            )

        position = execution.position
        pending: Future[Page] = pool.submit(fetch, position)
        while True:
            try:
                page = pending.result()
            except ConnectorError as exc:
                return _fail(services, execution_id, str(exc))
            end = executions.page_end(columns, page.rows, page.cursor)
            next_position = {"after": end} if end else position
            more = page.truncated
            if more and time.monotonic() < deadline:
                pending = pool.submit(fetch, next_position)
            try:
                with services.write() as tx:
                    result = executions.store_page(
                        tx,
                        execution_id,
                        fence=execution.fence,
                        rows=page.rows,
                        cursor=page.cursor,
                        skipped=page.skipped,
                        more=more,
                    )
            except QuotaExceededError:
                return _fail(services, execution_id, "quota exceeded")
            if result.finished:
                return result.status
            if time.monotonic() >= deadline or not lease.extend():
                return None
            position = next_position
    except (executions.StaleFenceError, executions.ExecutionClosedError):
        logger.info("pull taken over or ended elsewhere", execution_id=execution_id)
        return None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        lease.release()


def _fail(services: PullServices, execution_id: str, error: str) -> str:
    with services.write() as tx:
        executions.finish(tx, execution_id, status="failed", error=error)
    logger.warning("pull failed", execution_id=execution_id, error=error)
    return "failed"


def handle_timer(event: Any, services: PullServices, ctx: InvocationContext) -> dict[str, Any]:
    deadline = time.monotonic() + ctx.remaining_ms() / 1000 - SAFETY_MARGIN_S
    with services.read() as tx:
        stale = executions.stale_relay_executions(tx, older_than_s=RELAY_STALE_S)
    for execution_id in stale:
        with services.write() as tx:
            executions.finish(
                tx,
                execution_id,
                status="failed",
                error=f"the connector sent nothing for {RELAY_STALE_S} s",
            )
    started = 0
    with services.read() as tx:
        due = due_job_ids(tx, limit=DUE_JOBS_PER_TICK)
    for job_id in due:
        try:
            start_job(services, job_id, tenant_id=None, trigger="schedule")
            started += 1
        except JobRunningError:
            continue
    driven = 0
    with services.read() as tx:
        running = executions.running_tunnel_executions(tx, limit=50)
    for execution_id in running:
        if time.monotonic() >= deadline:
            break
        drive_tunnel(services, execution_id, deadline)
        driven += 1
    with services.write() as tx:
        pruned = relay_jobs.prune(tx, older_than_s=RELAY_RETENTION_S)
    summary = {
        "stale_failed": len(stale),
        "started": started,
        "driven": driven,
        "relay_jobs_pruned": pruned,
    }
    logger.info("pull tick", **summary)
    return summary
