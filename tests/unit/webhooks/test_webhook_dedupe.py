"""Replay dedupe of webhook ids: the Redis fast path (and its fallback with Redis stopped) and
the lasting PostgreSQL record, against the session's real servers."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import pytest

from hybrid import cache, webhooks
from hybrid.db import database


@pytest.fixture
def redis_factory(endpoints: Any) -> Any:
    url: str = endpoints.redis_url
    cache.clear_clients()
    yield lambda: cache.redis_client(url)
    cache.clear_clients()


@pytest.fixture
def source(clean_db: str) -> dict[str, str]:
    tenant_id, source_id = f"ten_{secrets.token_hex(6)}", f"src_{secrets.token_hex(6)}"
    with database(clean_db).transaction() as tx:
        tx.execute("INSERT INTO tenants (id, name) VALUES (:id, :id)", id=tenant_id)
        tx.execute(
            "INSERT INTO sources (id, tenant_id, name) VALUES (:id, :tenant, 'crm')",
            id=source_id,
            tenant=tenant_id,
        )
    return {"tenant_id": tenant_id, "source_id": source_id, "url": clean_db}


def test_fast_path_remembers_an_id(redis_factory: Any) -> None:
    source_id, msg = f"src_{secrets.token_hex(4)}", f"msg_{secrets.token_hex(4)}"
    assert webhooks.remember_fast(redis_factory, source_id, msg) is True
    assert webhooks.remember_fast(redis_factory, source_id, msg) is False
    # Ids are per source.
    assert webhooks.remember_fast(redis_factory, f"{source_id}x", msg) is True
    ttl = redis_factory().ttl(webhooks._dedupe_key(source_id, msg))
    assert 2 * webhooks.DEFAULT_TOLERANCE_S - 5 <= ttl <= 2 * webhooks.DEFAULT_TOLERANCE_S


def test_fast_path_ttl_must_cover_twice_the_window(redis_factory: Any) -> None:
    with pytest.raises(ValueError, match="at least 600"):
        webhooks.remember_fast(redis_factory, "src", "msg", ttl_s=60)


def test_fast_path_concurrent_first_sight_is_unique(redis_factory: Any) -> None:
    msg = f"msg_{secrets.token_hex(4)}"
    results: list[bool] = []
    lock = threading.Lock()

    def attempt() -> None:
        first = webhooks.remember_fast(redis_factory, "src_race", msg)
        with lock:
            results.append(first)

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 19 + [True]


def test_postgres_records_an_id_once(source: dict[str, str]) -> None:
    db = database(source["url"])
    ids = {"source_id": source["source_id"], "webhook_id": "msg_1"}
    with db.transaction() as tx:
        assert webhooks.existing_receipt(tx, **ids) is None
        assert webhooks.record_message(
            tx, tenant_id=source["tenant_id"], receipt_id="rcp_first", **ids
        )
    with db.transaction() as tx:
        assert not webhooks.record_message(
            tx, tenant_id=source["tenant_id"], receipt_id="rcp_second", **ids
        )
        assert webhooks.existing_receipt(tx, **ids) == "rcp_first"
        assert webhooks.existing_receipt(tx, source["source_id"], "msg_2") is None


def test_postgres_record_rolls_back_with_its_transaction(source: dict[str, str]) -> None:
    db = database(source["url"])
    ids = {"source_id": source["source_id"], "webhook_id": "msg_crash"}

    class Crash(Exception):
        pass

    def deliver_and_crash() -> None:
        with db.transaction() as tx:
            webhooks.record_message(tx, tenant_id=source["tenant_id"], receipt_id="rcp_lost", **ids)
            raise Crash

    with pytest.raises(Crash):
        deliver_and_crash()
    with db.transaction() as tx:
        # The failed delivery left nothing behind: the retry is stored.
        assert webhooks.existing_receipt(tx, **ids) is None
        assert webhooks.record_message(
            tx, tenant_id=source["tenant_id"], receipt_id="rcp_retry", **ids
        )


def test_redis_down_falls_back_to_postgres(
    stack: Any,
    redis_factory: Any,
    source: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not hasattr(stack, "stop_redis"):
        pytest.skip("external Redis: cannot be stopped from the tests")
    monkeypatch.setattr(webhooks, "_last_redis_warning", 0.0)
    msg = f"msg_{secrets.token_hex(4)}"
    assert webhooks.remember_fast(redis_factory, source["source_id"], msg) is True
    stack.stop_redis()
    try:
        capsys.readouterr()
        # Seen before, but Redis cannot say so: PostgreSQL decides.
        assert webhooks.remember_fast(redis_factory, source["source_id"], msg) is True
        assert webhooks.remember_fast(redis_factory, source["source_id"], msg) is True
        logged = capsys.readouterr().out
        db = database(source["url"])
        common = {"tenant_id": source["tenant_id"], "source_id": source["source_id"]}
        with db.transaction() as tx:
            assert webhooks.record_message(tx, webhook_id=msg, receipt_id="rcp_1", **common)
        with db.transaction() as tx:
            assert not webhooks.record_message(tx, webhook_id=msg, receipt_id="rcp_2", **common)
    finally:
        stack.start_redis()
    # Logged once, not once per message (at most once a minute), without the id.
    assert logged.count("redis unavailable") == 1
    assert msg not in logged
    cache.clear_clients()
    assert webhooks.remember_fast(redis_factory, source["source_id"], f"{msg}-after") is True
