"""The cached query API: miss then hit, max_age, single flight, stale-if-error, refusals,
validation, scopes and tenant isolation."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .conftest import Call, ask, queries_run, redis_keys

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def test_a_query_misses_once_then_hits_with_its_age_and_only_masked_rows(
    cache: Call, world: dict[str, Any]
) -> None:
    first = ask(cache, world)
    assert first.status == 200, first.json
    assert first.header("X-Cache") == "MISS"
    assert first.header("Age") == "0"
    body = first.json
    assert body["columns"] == ["id", "name", "phone", "city"]
    assert body["row_count"] == 20 == len(body["rows"])
    assert RFC3339.match(body["cached_at"])
    assert all("****" in row["phone"] for row in body["rows"])
    ran = queries_run(world["server"])

    again = ask(cache, world)
    assert again.status == 200
    assert again.header("X-Cache") == "HIT"
    assert int(again.header("Age")) >= 0
    assert again.json["rows"] == body["rows"]
    assert again.json["cached_at"] == body["cached_at"]
    assert queries_run(world["server"]) == ran  # the connector was not asked again


def test_the_same_query_spelled_differently_shares_one_entry(
    cache: Call, world: dict[str, Any]
) -> None:
    assert ask(cache, world).header("X-Cache") == "MISS"
    respelled = "select ID, name,  PHONE, city\n  from PEOPLE where id <= $1 /* same */ order by id"
    assert ask(cache, world, sql=respelled).header("X-Cache") == "HIT"
    assert ask(cache, world, limit=21).header("X-Cache") == "MISS"  # other parameters


def test_max_age_zero_reads_the_source_again(cache: Call, world: dict[str, Any]) -> None:
    assert ask(cache, world).header("X-Cache") == "MISS"
    ran = queries_run(world["server"])
    fresh = ask(cache, world, max_age=0)
    assert fresh.header("X-Cache") == "MISS"
    assert queries_run(world["server"]) == ran + 1


def test_fifty_concurrent_identical_misses_run_the_connector_query_once(
    cache: Call, world: dict[str, Any]
) -> None:
    ran = queries_run(world["server"])
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: ask(cache, world, limit=200), range(50)))
    assert {answer.status for answer in answers} == {200}
    statuses = sorted(answer.header("X-Cache") for answer in answers)
    assert statuses.count("MISS") == 1, statuses
    assert statuses.count("HIT") == 49
    assert queries_run(world["server"]) == ran + 1
    assert all(answer.json["rows"] == answers[0].json["rows"] for answer in answers)


def test_when_the_connector_is_down_a_cached_copy_is_stale_and_none_is_503(
    cache: Call, world: dict[str, Any]
) -> None:
    cached = ask(cache, world)
    assert cached.header("X-Cache") == "MISS"
    world["server"].stop()
    stale = ask(cache, world, max_age=0)
    assert stale.status == 200, stale.json
    assert stale.header("X-Cache") == "STALE"
    assert stale.json["rows"] == cached.json["rows"]
    assert stale.json["cached_at"] == cached.json["cached_at"]
    assert int(stale.header("Age")) >= 0
    never = ask(cache, world, limit=3)
    assert never.status == 503
    assert int(never.header("Retry-After")) >= 1
    assert never.content_type == "application/problem+json"


def test_a_query_the_connector_refuses_is_a_422_and_is_never_cached(
    cache: Call, world: dict[str, Any], cache_env: dict[str, str]
) -> None:
    ran = queries_run(world["server"])
    for _ in range(2):
        refused = ask(cache, world, sql="DELETE FROM people WHERE id <= $1")
        assert refused.status == 422, refused.json
        assert "DELETE FROM people" not in refused.body.decode()  # no SQL text
    assert queries_run(world["server"]) == ran + 2  # asked each time: nothing was cached
    assert not [key for key in redis_keys(cache_env) if b":e:" in key]
    not_allowed = ask(cache, world, sql="SELECT * FROM pg_shadow WHERE 1 <= $1")
    assert not_allowed.status == 422


def test_rows_the_connector_failed_to_mask_are_neither_cached_nor_returned(
    cache: Call, world: dict[str, Any], cache_env: dict[str, str], monkeypatch: Any
) -> None:
    """A connector whose masking and egress scan are broken (an old or tampered build): the
    cloud's scanner still refuses the rows."""
    import connector.service
    from hybrid.masking.policy import MaskingPolicy

    monkeypatch.setattr(connector.service, "assert_clean", lambda rows: None)
    monkeypatch.setattr(MaskingPolicy, "apply", lambda self, row: dict(row))
    leaked = ask(cache, world)
    assert leaked.status == 422, leaked.json
    assert leaked.json["errors"][0]["type"] == "pii_detected"
    assert b"139" not in leaked.body
    assert not [key for key in redis_keys(cache_env) if b":e:" in key]


def test_another_tenants_connector_is_not_found_and_its_entries_are_never_seen(
    cache: Call, world: dict[str, Any], cache_env: dict[str, str], start_connector: Any
) -> None:
    assert ask(cache, world).header("X-Cache") == "MISS"
    foreign = ask(cache, world, connector=world["other_tunnel"])
    assert foreign.status == 404
    assert world["other_tunnel"] not in foreign.body.decode()
    mine_to_them = ask(cache, world, token=world["other_key"])
    assert mine_to_them.status == 404

    start_connector(world["other_secret"], world["other_port"])
    theirs = ask(cache, world, token=world["other_key"], connector=world["other_tunnel"])
    assert theirs.status == 200
    assert theirs.header("X-Cache") == "MISS"  # the first tenant's entry is not theirs
    tags = {re.search(rb"\{([^}]*)\}", key).group(1) for key in redis_keys(cache_env)}
    assert tags == {world["tenant_id"].encode(), world["other_tenant_id"].encode()}


def test_credentials_scopes_and_bodies_are_checked(cache: Call, world: dict[str, Any]) -> None:
    assert ask(cache, world, token="hk_nope.nope").status == 401
    missing = cache("POST", "/api/v1/hybrid/query", body={})
    assert missing.status == 401
    assert ask(cache, world, token=world["keys"]["status"]).status == 403
    assert ask(cache, world, token=world["keys"]["admin"]).status == 200  # admin has them all
    token = world["keys"]["query"]
    bad_json = cache("POST", "/api/v1/hybrid/query", token=token, raw_body=b"{nope")
    assert bad_json.status == 400
    wrong_type = cache(
        "POST",
        "/api/v1/hybrid/query",
        token=token,
        raw_body=b"{}",
        headers={"content-type": "text/plain"},
    )
    assert wrong_type.status == 415
    for change in (
        {"max_age": -1},
        {"max_age": "300"},
        {"params": [{"nested": 1}]},
        {"params": [float("inf")]},
        {"sql": "   "},
        {"surprise": 1},
        {"source": "nosuch"},
    ):
        answer = (
            ask(cache, world, **change)
            if "params" not in change
            else cache(
                "POST",
                "/api/v1/hybrid/query",
                token=token,
                body={
                    "connector_id": world["tunnel"],
                    "source": "erp",
                    "sql": "SELECT 1",
                    **change,
                },
            )
        )
        assert answer.status == 422, (change, answer.status)
        assert answer.content_type == "application/problem+json"
    get = cache("GET", "/api/v1/hybrid/query", token=token)
    assert get.status == 405


def test_redis_down_answers_503_with_retry_after(
    cache: Call, world: dict[str, Any], stack: Any
) -> None:
    assert ask(cache, world).status == 200
    stack.stop_redis()
    try:
        down = ask(cache, world)
    finally:
        stack.start_redis()
    assert down.status == 503
    assert int(down.header("Retry-After")) >= 1
    assert ask(cache, world).status == 200  # back once Redis is
