"""Cache queries through a relay connector: a `query` relay job, its chunks stored by
connector-relay and read back (then dropped), errors sorted into the caller's and the
connector's. The test plays the connector through connector-relay's real handler."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hybrid.connectors.protocol import ResultChunk, dumps
from tests.support.connector import wait_for

from .conftest import PEOPLE_SQL, Call, ask


def _jobs_path(world: dict[str, Any]) -> str:
    return f"/api/v1/connectors/{world['relay']}/jobs"


def _heartbeat(relay: Any, world: dict[str, Any]) -> None:
    answer = relay("GET", _jobs_path(world), world["relay_secret"], query={"wait": "0"})
    assert answer.status == 200, answer.body


def _next_job(relay: Any, world: dict[str, Any]) -> dict[str, Any]:
    def poll() -> Any:
        answer = relay("GET", _jobs_path(world), world["relay_secret"], query={"wait": "1"})
        assert answer.status == 200
        return answer.json["jobs"]

    return wait_for(poll, timeout=10)[0]


def _post(relay: Any, world: dict[str, Any], job: dict[str, Any], chunk: ResultChunk, **kw: Any):
    path = f"{_jobs_path(world)}/{job['job_id']}/result"
    answer = relay("POST", path, world["relay_secret"], body=dumps(chunk.to_json(**kw)))
    assert answer.status == 200, answer.body
    return answer


def test_a_relay_query_is_answered_from_its_chunks_then_cached_and_its_rows_dropped(
    cache: Call, world: dict[str, Any], relay: Any, cache_env: dict[str, str]
) -> None:
    from hybrid.db import database

    _heartbeat(relay, world)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(ask, cache, world, connector=world["relay"])
        job = _next_job(relay, world)
        assert job["kind"] == "query"
        assert job["query"]["sql"] == PEOPLE_SQL
        assert job["query"]["params"] == [20]
        columns = ("id", "city")
        first = ResultChunk(
            seq=job["first_seq"],
            attempt=job["attempt"],
            columns=columns,
            rows=[{"id": 1, "city": "上海"}],
            row_count=1,
            total_rows=1,
        )
        last = ResultChunk(
            seq=job["first_seq"] + 1,
            attempt=job["attempt"],
            columns=columns,
            rows=[{"id": 2, "city": "Beijing"}],
            row_count=1,
            total_rows=2,
            done=True,
        )
        _post(relay, world, job, first)
        _post(relay, world, job, last, columnar=True)  # low-bandwidth chunks are column-wise
        answer = pending.result(timeout=30)
    assert answer.status == 200, answer.json
    assert answer.header("X-Cache") == "MISS"
    assert answer.json["rows"] == [{"id": 1, "city": "上海"}, {"id": 2, "city": "Beijing"}]
    assert answer.json["columns"] == ["id", "city"]
    with database(cache_env["DATABASE_URL"]).transaction() as tx:
        kept = tx.scalar("SELECT count(*) FROM relay_chunks WHERE job_id = :j", j=job["job_id"])
    assert kept == 0
    assert ask(cache, world, connector=world["relay"]).header("X-Cache") == "HIT"


def test_a_relay_refusal_is_a_422_and_a_silent_relay_connector_is_a_quick_503(
    cache: Call, world: dict[str, Any], relay: Any
) -> None:
    started = time.monotonic()
    silent = ask(cache, world, connector=world["relay"])
    assert silent.status == 503
    assert time.monotonic() - started < 5
    assert int(silent.header("Retry-After")) >= 1

    _heartbeat(relay, world)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(ask, cache, world, connector=world["relay"])
        job = _next_job(relay, world)
        error = {"code": "query_rejected", "message": "only SELECT queries are allowed"}
        _post(
            relay,
            world,
            job,
            ResultChunk(seq=job["first_seq"], attempt=job["attempt"], done=True, error=error),
        )
        answer = pending.result(timeout=30)
    assert answer.status == 422, answer.json
    assert answer.json["errors"][0]["type"] == "query_rejected"


def test_a_relay_source_that_fails_serves_the_stale_copy(
    cache: Call, world: dict[str, Any], relay: Any
) -> None:
    _heartbeat(relay, world)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(ask, cache, world, connector=world["relay"])
        job = _next_job(relay, world)
        rows = [{"id": 1}]
        done = ResultChunk(
            seq=job["first_seq"], attempt=job["attempt"], columns=("id",), rows=rows,
            row_count=1, total_rows=1, done=True,
        )  # fmt: skip
        _post(relay, world, job, done)
        assert pending.result(timeout=30).header("X-Cache") == "MISS"
        pending = pool.submit(ask, cache, world, connector=world["relay"], max_age=0)
        job = _next_job(relay, world)
        error = {"code": "source_unavailable", "message": "the database is down"}
        failed = ResultChunk(seq=job["first_seq"], attempt=job["attempt"], done=True, error=error)
        _post(relay, world, job, failed)
        stale = pending.result(timeout=30)
    assert stale.status == 200
    assert stale.header("X-Cache") == "STALE"
    assert stale.json["rows"] == rows
