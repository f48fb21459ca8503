"""The 5-minute refresh (hot set by decayed frequency, budgets, rewrite only on change, the
leader lease) and invalidation by tenant, connector and query."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .conftest import CACHE, Call, ask, entry, free_port, use_policy


def _make_hot(cache: Call, world: dict[str, Any], limits: tuple[int, ...], uses: int = 3) -> dict:
    fps = {}
    for limit in limits:
        for _ in range(uses):
            answer = ask(cache, world, limit=limit)
            assert answer.status == 200, answer.json
        fps[limit] = answer.json["fingerprint"]
    return fps


def _add_tunnel(cache_env: dict[str, str], world: dict[str, Any], start_connector: Any, **extra):
    from hybrid.connectors.registry import Source, create_connector
    from hybrid.crypto import SecretBox
    from hybrid.db import database

    from .conftest import ENCRYPTION_KEY

    port = free_port()
    with database(cache_env["DATABASE_URL"]).transaction() as tx:
        created, secret = create_connector(
            tx,
            SecretBox(ENCRYPTION_KEY),
            tenant_id=world["tenant_id"],
            name=f"dc-{uuid.uuid4().hex[:6]}",
            transport="tunnel",
            endpoint=f"http://127.0.0.1:{port}",
            sources=[Source("erp", "postgresql")],
        )
    start_connector(secret, port, **extra)
    return created.id


def test_the_refresh_rewrites_only_the_entries_whose_content_changed(
    cache: Call,
    world: dict[str, Any],
    cache_env: dict[str, str],
    customer: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_policy(monkeypatch, refresh_min_age_s=0)
    fps = _make_hot(cache, world, (5, 6, 7))
    before = {limit: entry(cache_env, world["tenant_id"], fp) for limit, fp in fps.items()}
    with customer.connect() as con:
        old_city = con.run("SELECT city FROM people WHERE id = 7")[0][0]
        con.run("UPDATE people SET city = 'Hangzhou' WHERE id = 7")
    try:
        summary = cache.tick()
    finally:
        with customer.connect() as con:
            con.run("UPDATE people SET city = :city WHERE id = 7", city=old_city)
    assert summary["hot"] == 3, summary
    assert summary["uses_flushed"] == 9
    assert (summary["rewritten"], summary["unchanged"]) == (1, 2), summary
    after = {limit: entry(cache_env, world["tenant_id"], fp) for limit, fp in fps.items()}
    for limit in (5, 6):
        assert after[limit][b"h"] == before[limit][b"h"]
        assert after[limit][b"b"] == before[limit][b"b"]
        assert after[limit][b"w"] != before[limit][b"w"]
        assert float(after[limit][b"a"]) > float(before[limit][b"a"])
    assert after[7][b"h"] != before[7][b"h"]
    rows = ask(cache, world, limit=7).json["rows"]
    assert rows[-1]["city"] == "Hangzhou"


def test_entries_refreshed_recently_are_left_alone_and_cold_queries_are_not_refreshed(
    cache: Call, world: dict[str, Any]
) -> None:
    _make_hot(cache, world, (5,), uses=3)
    _make_hot(cache, world, (9,), uses=1)  # one use: below the hot set's minimum score
    summary = cache.tick()
    assert summary["hot"] == 1, summary
    assert summary["fresh"] == 1
    assert summary["rewritten"] + summary["unchanged"] == 0


def test_the_byte_budget_stops_the_refresh_and_low_bandwidth_connectors_get_less(
    cache: Call,
    world: dict[str, Any],
    cache_env: dict[str, str],
    start_connector: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fps = _make_hot(cache, world, (5, 6, 7))
    largest = max(int(entry(cache_env, world["tenant_id"], fp)[b"z"]) for fp in fps.values())
    slow = _add_tunnel(cache_env, world, start_connector, low_bandwidth=True)
    for limit in (5, 6):
        for _ in range(3):
            assert ask(cache, world, limit=limit, connector=slow).status == 200
    use_policy(
        monkeypatch,
        refresh_min_age_s=0,
        refresh_threads=1,
        connector_bytes=largest + 1,
        low_bandwidth_connector_bytes=1,
    )
    summary = cache.tick()
    assert summary["hot"] == 5, summary
    assert summary["low_bandwidth"] == 1
    refreshed = summary["rewritten"] + summary["unchanged"]
    assert 1 <= refreshed <= 2, summary  # the normal connector's budget fits one or two
    assert summary["over_bytes"] == 5 - refreshed
    assert summary["bytes"] > 0


def test_the_time_budget_starts_nothing_once_it_is_spent(
    cache: Call, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_hot(cache, world, (5, 6))
    use_policy(monkeypatch, refresh_min_age_s=0, refresh_time_s=1.0001)
    summary = cache.tick()
    assert summary["over_time"] == 2, summary
    assert cache.tick(limit_ms=8_500) == {"skipped": "no time left in this invocation"}


def test_an_overlapping_tick_does_nothing_while_the_leader_lease_is_held(
    cache: Call, world: dict[str, Any], cache_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hybrid import locks
    from hybrid.cache import redis_client
    from hybrid.hotcache.refresh import LEADER_LEASE

    use_policy(monkeypatch, refresh_min_age_s=0)
    _make_hot(cache, world, (5,))
    ran = world["server"].service.stats.snapshot()["queries"]
    lease = locks.acquire(lambda: redis_client(cache_env["REDIS_URL"]), LEADER_LEASE, 60_000)
    assert lease is not None
    try:
        assert cache.tick() == {"skipped": "another refresh is running"}
        assert world["server"].service.stats.snapshot()["queries"] == ran
    finally:
        lease.release()
    assert cache.tick()["unchanged"] == 1


def test_a_hot_query_the_connector_now_refuses_leaves_the_cache_and_the_hot_set(
    cache: Call, world: dict[str, Any], cache_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import connector.service
    from connector.sqlguard import QueryRejectedError

    use_policy(monkeypatch, refresh_min_age_s=0)
    fp = _make_hot(cache, world, (5,))[5]

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise QueryRejectedError("table people is no longer allowed")

    monkeypatch.setattr(connector.service, "check_query", refuse)
    summary = cache.tick()
    assert summary["refused"] == 1, summary
    assert entry(cache_env, world["tenant_id"], fp) == {}
    assert cache.tick()["hot"] == 0


def test_invalidation_by_query_connector_and_tenant_counts_what_it_removed(
    cache: Call, world: dict[str, Any], cache_env: dict[str, str], start_connector: Any
) -> None:
    admin = world["keys"]["admin"]
    fps = {limit: ask(cache, world, limit=limit).json["fingerprint"] for limit in (1, 2, 3)}
    start_connector(world["other_secret"], world["other_port"])
    theirs = ask(cache, world, token=world["other_key"], connector=world["other_tunnel"])
    assert theirs.header("X-Cache") == "MISS"

    one = cache("DELETE", CACHE, token=admin, body={"fingerprint": fps[1]})
    assert one.status == 200, one.json
    assert one.json == {"removed": 1, "scope": "query"}
    assert ask(cache, world, limit=1).header("X-Cache") == "MISS"
    assert ask(cache, world, limit=2).header("X-Cache") == "HIT"

    none = cache("DELETE", CACHE, token=admin, body={"connector_id": world["relay"]})
    assert none.json == {"removed": 0, "scope": "connector"}
    by_connector = cache("DELETE", CACHE, token=admin, body={"connector_id": world["tunnel"]})
    assert by_connector.json == {"removed": 3, "scope": "connector"}
    assert entry(cache_env, world["tenant_id"], fps[2]) == {}

    ask(cache, world, limit=2)
    everything = cache("DELETE", CACHE, token=admin)
    assert everything.json == {"removed": 1, "scope": "tenant"}
    again = ask(cache, world, token=world["other_key"], connector=world["other_tunnel"])
    assert again.header("X-Cache") == "HIT"  # the other tenant's cache is untouched

    foreign = cache("DELETE", CACHE, token=admin, body={"connector_id": world["other_tunnel"]})
    assert foreign.status == 404
    assert cache("DELETE", CACHE, token=world["keys"]["query"]).status == 403
    assert cache("DELETE", CACHE, token=admin, body={"fingerprint": "XYZ"}).status == 422
    assert cache("DELETE", CACHE).status == 401


def test_a_result_fetched_before_an_invalidation_is_not_written_after_it(
    cache_env: dict[str, str], world: dict[str, Any]
) -> None:
    from hybrid.cache import redis_client
    from hybrid.hotcache.payload import encode
    from hybrid.hotcache.store import CacheStore

    store = CacheStore(lambda: redis_client(cache_env["REDIS_URL"]), world["tenant_id"])
    fp = "0" * 32
    seen = store.look(fp)
    assert store.invalidate() == 0
    _plain, encoded = encode(["a"], [{"a": 1}])
    common = {
        "as_of": 1.0,
        "watermark": None,
        "connector_id": world["tunnel"],
        "source": "erp",
        "ttl_s": 60,
    }
    assert store.put(fp, encoded, epoch=seen.epoch, **common) == -1
    assert store.look(fp).entry is None
    assert store.put(fp, encoded, epoch=store.look_epoch(), **common) == 1
    assert store.look(fp).entry is not None
