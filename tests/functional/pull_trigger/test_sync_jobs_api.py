"""Sync jobs over HTTP: validation, scopes, tenant isolation, pause/resume, run-now, and the
minute timer starting due jobs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

BASE = {
    "name": "orders",
    "source": "erp",
    "table": "orders",
    "cursor_column": "updated_at",
    "key_columns": ["id"],
}


def _create(pull, world, **overrides):
    return pull(
        "POST",
        "/api/v1/sync/jobs",
        token=world["key"],
        body={**BASE, "connector_id": world["relay"], **overrides},
    )


def test_a_created_job_is_listed_and_read_back(pull, world):
    created = _create(pull, world, schedule="*/15 * * * *")
    assert created.status == 201, created.body
    job = created.json
    assert job["schedule"] == "*/15 * * * *"
    assert job["cursor"] is None
    assert job["paused"] is False
    next_run = datetime.fromisoformat(job["next_run_at"])
    assert next_run.minute % 15 == 0
    assert next_run > datetime.now(timezone.utc)
    listed = pull("GET", "/api/v1/sync/jobs", token=world["read_key"])
    assert [j["id"] for j in listed.json["jobs"]] == [job["id"]]
    assert pull("GET", f"/api/v1/sync/jobs/{job['id']}", token=world["read_key"]).json == job


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"connector_id": "con_0000000000000000"}, "connector_id"),
        ({"source": "crm"}, "source"),
        ({"table": "orders; DROP TABLE x"}, "table"),
        ({"cursor_column": "a b"}, "cursor_column"),
        ({"cursor_column": None}, "cursor_column"),
        ({"key_columns": ["id", "id"]}, "key_columns"),
        ({"schedule": "every 0m"}, "schedule"),
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"masking": {"columns": {"phone": "scramble"}}}, "masking"),
    ],
)
def test_a_bad_job_gets_a_422_naming_the_field(pull, world, overrides, fragment):
    result = _create(pull, world, **overrides)
    assert result.status == 422, result.body
    assert result.content_type.startswith("application/problem+json")
    assert fragment in result.body.decode()
    assert pull("GET", "/api/v1/sync/jobs", token=world["key"]).json["jobs"] == []


def test_names_are_unique_per_tenant(pull, world):
    assert _create(pull, world).status == 201
    assert _create(pull, world).status == 409


def test_scopes_and_tenants_are_enforced(pull, world, pull_env):
    from hybrid.auth.store import create_api_key
    from hybrid.db import database
    from hybrid.tenants import create_tenant

    job = _create(pull, world).json
    assert _create(pull, {**world, "key": world["read_key"]}).status == 403
    assert pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["read_key"]).status == 403
    assert pull("GET", "/api/v1/sync/jobs").status == 401
    with database(pull_env["DATABASE_URL"]).transaction() as tx:
        other = create_tenant(tx, "Other")
        _key, token = create_api_key(
            tx, tenant_id=other.id, name="o", scopes=("jobs:write", "status:read")
        )
    assert pull("GET", f"/api/v1/sync/jobs/{job['id']}", token=token.token).status == 404
    assert pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=token.token).status == 404
    # Another tenant's connector cannot be named in a job either.
    foreign = pull(
        "POST",
        "/api/v1/sync/jobs",
        token=token.token,
        body={**BASE, "connector_id": world["relay"]},
    )
    assert foreign.status == 422


def test_a_job_never_runs_twice_at_once(pull, world):
    job = _create(pull, world).json
    first = pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["key"])
    assert first.status == 202
    second = pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["key"])
    assert second.status == 409
    assert second.header("retry-after")
    assert pull("DELETE", f"/api/v1/sync/jobs/{job['id']}", token=world["key"]).status == 409
    [execution] = pull("GET", f"/api/v1/sync/jobs/{job['id']}/executions", token=world["key"]).json
    assert execution["execution_id"] == first.json["execution_id"]
    assert execution["status"] == "running"


def test_racing_starts_open_exactly_one_execution(pull, world, pull_env):
    from concurrent.futures import ThreadPoolExecutor

    job = _create(pull, world).json
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda _: pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["key"]),
                range(8),
            )
        )
    assert sorted(r.status for r in results) == [202] + [409] * 7
    executions = pull("GET", f"/api/v1/sync/jobs/{job['id']}/executions", token=world["key"]).json
    assert len(executions) == 1


def test_paused_jobs_are_not_started_by_the_timer_or_by_hand(pull, world, tick, pull_env):
    from hybrid.db import database

    job = _create(pull, world, schedule="every 1m").json
    paused = pull("POST", f"/api/v1/sync/jobs/{job['id']}/pause", token=world["key"])
    assert paused.json["paused"] is True
    _make_due(pull_env, job["id"])
    assert tick()["started"] == 0
    assert pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["key"]).status == 409
    resumed = pull("POST", f"/api/v1/sync/jobs/{job['id']}/resume", token=world["key"]).json
    assert resumed["paused"] is False
    _make_due(pull_env, job["id"])
    assert tick()["started"] == 1
    with database(pull_env["DATABASE_URL"]).transaction() as tx:
        execution = tx.one(
            "SELECT trigger, status FROM sync_executions WHERE job_id = :j", j=job["id"]
        )
        next_run = tx.scalar("SELECT next_run_at FROM sync_jobs WHERE id = :j", j=job["id"])
    assert execution == {"trigger": "schedule", "status": "running"}
    assert next_run > datetime.now(timezone.utc)
    # Still running: the next tick starts nothing new even when the schedule says so.
    _make_due(pull_env, job["id"])
    assert tick()["started"] == 0


def test_the_timer_fails_a_relay_pull_whose_connector_went_silent(pull, world, tick, pull_env):
    from hybrid.db import database

    job = _create(pull, world).json
    pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["key"])
    with database(pull_env["DATABASE_URL"]).transaction() as tx:
        tx.execute(
            "UPDATE sync_executions SET progressed_at = now() - interval '11 minutes' "
            "WHERE job_id = :j",
            j=job["id"],
        )
    assert tick()["stale_failed"] == 1
    [execution] = pull("GET", f"/api/v1/sync/jobs/{job['id']}/executions", token=world["key"]).json
    assert execution["status"] == "failed"
    assert "sent nothing" in execution["error"]
    assert pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["key"]).status == 202


def test_three_failures_in_a_row_raise_one_alert_event(pull, world, tick, pull_env):
    from hybrid.db import database

    job = _create(pull, world, connector_id=world["tunnel"]).json
    for _ in range(3):
        assert pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["key"]).status == 202
        tick()  # the tunnel connector's port is closed: the pull fails
    executions = pull("GET", f"/api/v1/sync/jobs/{job['id']}/executions", token=world["key"]).json
    assert [e["status"] for e in executions] == ["failed"] * 3
    assert all("unreachable" in e["error"] for e in executions)
    with database(pull_env["DATABASE_URL"]).transaction() as tx:
        alerts = tx.rows("SELECT topic, payload FROM outbox WHERE topic = 'alerts'")
    assert len(alerts) == 1
    payload = alerts[0]["payload"]
    assert payload["labels"]["alertname"] == "SyncJobFailing"
    assert payload["labels"]["job_id"] == job["id"]
    assert payload["consecutive_failures"] == 3


def _make_due(pull_env, job_id: str) -> None:
    from hybrid.db import database

    with database(pull_env["DATABASE_URL"]).transaction() as tx:
        tx.execute(
            "UPDATE sync_jobs SET next_run_at = :at WHERE id = :id",
            id=job_id,
            at=datetime.now(timezone.utc) - timedelta(seconds=1),
        )


def test_a_job_can_be_changed_and_a_bad_change_leaves_it_as_it_was(pull, world):
    job = _create(pull, world, schedule="every 5m").json
    other = _create(pull, world, name="other").json
    changed = pull(
        "PATCH",
        f"/api/v1/sync/jobs/{job['id']}",
        token=world["key"],
        body={"name": "orders-v2", "page_rows": 2000, "masking": {"columns": {"phone": "drop"}}},
    )
    assert changed.status == 200, changed.body
    assert changed.json["name"] == "orders-v2"
    assert changed.json["page_rows"] == 2000
    assert changed.json["masking"] == {"columns": {"phone": "drop"}}
    assert changed.json["schedule"] == "every 5m"  # left out: kept
    cleared = pull(
        "PATCH", f"/api/v1/sync/jobs/{job['id']}", token=world["key"], body={"schedule": None}
    ).json
    assert cleared["schedule"] is None
    assert cleared["next_run_at"] is None
    for body, status in (
        ({"name": "other"}, 409),
        ({"schedule": "every 0m"}, 422),
        ({"table": "secrets"}, 422),
        ({"page_rows": 0}, 422),
        ({"name": None}, 422),
    ):
        bad = pull("PATCH", f"/api/v1/sync/jobs/{job['id']}", token=world["key"], body=body)
        assert bad.status == status, (body, bad.body)
        assert bad.content_type.startswith("application/problem+json")
    assert pull("GET", f"/api/v1/sync/jobs/{job['id']}", token=world["key"]).json == cleared
    assert (
        pull("PATCH", f"/api/v1/sync/jobs/{other['id']}", token=world["read_key"], body={}).status
        == 403
    )


def test_the_timer_deletes_finished_relay_jobs_after_a_week(pull, world, tick, pull_env):
    from hybrid.db import database

    job = _create(pull, world).json
    pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["key"])
    with database(pull_env["DATABASE_URL"]).transaction() as tx:
        tx.execute(
            "INSERT INTO relay_jobs (id, connector_id, tenant_id, kind, status, updated_at) "
            "VALUES ('rjb_old', :c, :t, 'ping', 'done', now() - interval '8 days'), "
            "('rjb_new', :c, :t, 'ping', 'done', now() - interval '6 days')",
            c=world["relay"],
            t=world["tenant_id"],
        )
    assert tick()["relay_jobs_pruned"] == 1
    with database(pull_env["DATABASE_URL"]).transaction() as tx:
        left = {r["id"] for r in tx.rows("SELECT id FROM relay_jobs WHERE kind = 'ping'")}
        pulls = tx.scalar("SELECT count(*) FROM relay_jobs WHERE kind = 'pull'")
    assert left == {"rjb_new"}
    assert pulls == 1  # the running pull's job is untouched
