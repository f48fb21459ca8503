"""A relay pull end to end through the real pull-trigger and connector-relay handlers, the test
playing the connector: the SQL it is asked to run, chunks stored with the cursor, idempotency by
(job, seq), attempts, fencing, signatures."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from hybrid.connectors.protocol import compress

JOB = {
    "name": "customers",
    "source": "erp",
    "table": "public.customers",
    "cursor_column": "updated_at",
    "key_columns": ["id"],
    "schedule": "every 5m",
    "masking": {"columns": {"phone": "mask_phone"}},
}


def _rows(start: int, count: int, stamp: str = "2026-11-20T08:00:00+00:00") -> list[dict]:
    return [
        {"id": i, "name": f"客户{i}", "phone": "138****5678", "updated_at": stamp}
        for i in range(start, start + count)
    ]


def _chunk(job: dict, seq: int, rows: list[dict], *, done: bool, **extra: Any) -> bytes:
    body = {
        "seq": seq,
        "attempt": job["attempt"],
        "columns": list(rows[0]) if rows else [],
        "rows": rows,
        "row_count": len(rows),
        "cursor": [rows[-1]["updated_at"], rows[-1]["id"]] if rows else None,
        "done": done,
        **extra,
    }
    return json.dumps(body).encode()


@pytest.fixture
def job(pull, world) -> dict[str, Any]:
    result = pull(
        "POST",
        "/api/v1/sync/jobs",
        token=world["key"],
        body={**JOB, "connector_id": world["relay"]},
    )
    assert result.status == 201, result.body
    return result.json


def _poll(relay, world, wait: str = "0") -> dict[str, Any]:
    path = f"/api/v1/connectors/{world['relay']}/jobs"
    result = relay(
        "GET",
        path,
        world["relay_secret"],
        query={"wait": wait},
        headers={
            "X-Connector-Instance": "inst-1",
            "X-Connector-Version": "1.0",
            "X-Spool-Depth": "0",
        },
    )
    assert result.status == 200, result.body
    from hybrid.signing import verify

    verify(result.headers, result.body, [world["relay_secret"]])  # the cloud signs job lists
    return result.json


def _post(relay, world, job: dict, body: bytes, **kwargs: Any):
    path = f"/api/v1/connectors/{world['relay']}/jobs/{job['job_id']}/result"
    return relay("POST", path, world["relay_secret"], body=body, **kwargs)


def _records(pull_env) -> dict[str, dict]:
    from hybrid.db import database

    with database(pull_env["DATABASE_URL"]).transaction() as tx:
        rows = tx.rows(
            "SELECT key, data, receipt_id FROM records WHERE entity = 'public.customers'"
        )
    return {row["key"]: row for row in rows}


def test_a_relay_pull_stores_each_chunk_with_its_cursor_and_finishes(
    pull, relay, world, job, pull_env
):
    run = pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["key"])
    assert run.status == 202
    execution_id = run.json["execution_id"]

    polled = _poll(relay, world)
    assert len(polled["jobs"]) == 1
    handed = polled["jobs"][0]
    query = handed["query"]
    assert handed["kind"] == "query"
    assert handed["first_seq"] == 0
    assert query["source"] == "erp"
    assert query["sql"] == (
        'SELECT * FROM "public"."customers" WHERE "updated_at" IS NOT NULL '
        'ORDER BY "updated_at", "id" LIMIT 50001'
    )
    assert query["cursor_columns"] == ["updated_at", "id"]
    assert query["masking"] == JOB["masking"]

    first = _post(relay, world, handed, _chunk(handed, 0, _rows(1, 3), done=False))
    assert first.status == 200, first.body
    assert first.json == {"accepted": True, "duplicate": False}
    # Stored at once, before the job is done: the chunk is a checkpoint.
    assert sorted(_records(pull_env)) == ["1", "2", "3"]
    got = pull("GET", f"/api/v1/sync/jobs/{job['id']}", token=world["key"]).json
    assert got["cursor"] == "2026-11-20T08:00:00+00:00"

    again = _post(relay, world, handed, _chunk(handed, 0, _rows(1, 3), done=False))
    assert again.status == 200
    assert again.json["duplicate"] is True

    compressed = compress(_chunk(handed, 1, _rows(4, 2), done=True), "zstd")
    last = _post(relay, world, handed, compressed, headers={"Content-Encoding": "zstd"})
    assert last.status == 200, last.body
    assert sorted(_records(pull_env)) == ["1", "2", "3", "4", "5"]
    assert _records(pull_env)["4"]["data"]["name"] == "客户4"

    executions = pull("GET", f"/api/v1/sync/jobs/{job['id']}/executions", token=world["read_key"])
    assert executions.status == 200
    [execution] = executions.json
    assert execution["execution_id"] == execution_id
    assert execution["status"] == "success"
    assert execution["records_processed"] == 5
    assert execution["records_succeeded"] == 5
    assert execution["ended_at"] is not None
    assert _poll(relay, world)["jobs"] == []


def test_the_next_run_starts_inside_the_overlap_window(pull, relay, world, job):
    pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["key"])
    handed = _poll(relay, world)["jobs"][0]
    _post(relay, world, handed, _chunk(handed, 0, _rows(1, 2), done=True))

    pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["key"])
    query = _poll(relay, world)["jobs"][0]["query"]
    assert '"updated_at" >= $1' in query["sql"]
    # 60 s before the highest stored value: a late row with an older stamp is read again.
    assert query["params"] == ["2026-11-20T07:59:00+00:00"]


def test_a_full_page_is_followed_by_the_next_page_from_the_last_stored_row(
    pull, relay, world, pull_env
):
    created = pull(
        "POST",
        "/api/v1/sync/jobs",
        token=world["key"],
        body={**JOB, "connector_id": world["relay"], "page_rows": 2},
    ).json
    pull("POST", f"/api/v1/sync/jobs/{created['id']}/run", token=world["key"])
    handed = _poll(relay, world)["jobs"][0]
    assert handed["query"]["max_rows"] == 20
    assert handed["chunk_rows"] == 2
    _post(relay, world, handed, _chunk(handed, 0, _rows(1, 2), done=False))
    _post(relay, world, handed, _chunk(handed, 1, _rows(3, 2), done=True, truncated=True))
    nxt = _poll(relay, world)["jobs"][0]
    assert nxt["job_id"] == handed["job_id"]
    assert nxt["first_seq"] == 2
    assert nxt["attempt"] == handed["attempt"] + 1
    assert '("updated_at", "id") > ($1, $2)' in nxt["query"]["sql"]
    assert nxt["query"]["params"] == ["2026-11-20T08:00:00+00:00", 4]
    _post(relay, world, nxt, _chunk(nxt, 2, _rows(5, 1), done=True))
    assert sorted(_records(pull_env)) == ["1", "2", "3", "4", "5"]


def test_a_restarted_connector_resumes_from_what_the_cloud_stored(
    pull, relay, world, job, pull_env
):
    pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["key"])
    handed = _poll(relay, world)["jobs"][0]
    _post(relay, world, handed, _chunk(handed, 0, _rows(1, 3), done=False))
    # A new process of the connector polls: the job is handed over at once, from row 3 on.
    path = f"/api/v1/connectors/{world['relay']}/jobs"
    result = relay(
        "GET",
        path,
        world["relay_secret"],
        query={"wait": "0"},
        headers={"X-Connector-Instance": "inst-2"},
    )
    resumed = result.json["jobs"][0]
    assert resumed["attempt"] == handed["attempt"] + 1
    assert resumed["first_seq"] == 1
    assert resumed["query"]["params"] == ["2026-11-20T08:00:00+00:00", 3]
    # The old process's next chunk is refused: it belongs to the earlier attempt.
    stale = _post(relay, world, handed, _chunk(handed, 1, _rows(4, 1), done=True))
    assert stale.status == 409
    assert stale.content_type.startswith("application/problem+json")
    out_of_order = _post(relay, world, resumed, _chunk(resumed, 5, _rows(4, 1), done=True))
    assert out_of_order.status == 409
    ok = _post(relay, world, resumed, _chunk(resumed, 1, _rows(4, 1), done=True))
    assert ok.status == 200
    assert sorted(_records(pull_env)) == ["1", "2", "3", "4"]


def test_requests_not_signed_with_the_connector_secret_are_refused(
    pull, relay, world, job, pull_env
):
    from hybrid.signing import new_webhook_secret

    path = f"/api/v1/connectors/{world['relay']}/jobs"
    forged = relay(
        "GET", path, world["relay_secret"], query={"wait": "0"}, sign_as=new_webhook_secret()
    )
    assert forged.status == 401
    other = relay("GET", path, world["tunnel_secret"], query={"wait": "0"})
    assert other.status == 401
    unknown = relay("GET", "/api/v1/connectors/con_0000000000000000/jobs", world["relay_secret"])
    assert unknown.status == 401

    pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["key"])
    handed = _poll(relay, world)["jobs"][0]
    body = _chunk(handed, 0, _rows(1, 1), done=True)
    forged_post = relay(
        "POST",
        f"{path}/{handed['job_id']}/result",
        world["relay_secret"],
        body=body,
        sign_as=new_webhook_secret(),
    )
    assert forged_post.status == 401
    assert _records(pull_env) == {}


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{not json", {}, 400),
        (json.dumps({"seq": 0}).encode(), {}, 422),
        (json.dumps({"seq": 0, "attempt": 1, "row_count": 2, "rows": [{}]}).encode(), {}, 422),
        (b"\x28\xb5\x2f\xfd garbage", {"Content-Encoding": "zstd"}, 422),
        (gzip.compress(b"x" * 10)[:-4], {"Content-Encoding": "gzip"}, 422),
    ],
)
def test_malformed_chunks_get_a_clear_4xx_and_store_nothing(
    pull, relay, world, job, pull_env, body, headers, status
):
    pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["key"])
    handed = _poll(relay, world)["jobs"][0]
    result = _post(relay, world, handed, body, headers=headers)
    assert result.status == status, result.body
    assert result.content_type.startswith("application/problem+json")
    assert _records(pull_env) == {}


def test_a_failed_chunk_fails_the_execution_and_frees_the_job(pull, relay, world, job):
    pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["key"])
    handed = _poll(relay, world)["jobs"][0]
    error = {"code": "pii_detected", "message": "the egress scanner refused a chunk"}
    result = _post(relay, world, handed, _chunk(handed, 0, [], done=True, error=error))
    assert result.status == 200
    [execution] = pull("GET", f"/api/v1/sync/jobs/{job['id']}/executions", token=world["key"]).json
    assert execution["status"] == "failed"
    assert "pii_detected" in execution["error"]
    again = pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["key"])
    assert again.status == 202


def test_a_peek_answers_the_time_and_hands_out_nothing(pull, relay, world, job):
    pull("POST", f"/api/v1/sync/jobs/{job['id']}/run", token=world["key"])
    path = f"/api/v1/connectors/{world['relay']}/jobs"
    peek = relay("GET", path, world["relay_secret"], query={"peek": "1", "wait": "0"})
    assert peek.status == 200
    assert peek.json["jobs"] == []
    assert peek.json["server_time"]
    # The job is still there for the real poll, at its first attempt.
    assert _poll(relay, world)["jobs"][0]["attempt"] == 1
