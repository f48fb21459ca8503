"""The timer's health tick: suspended (and failure-cooled) tokens are probed at the pool's health
URL with the token as bearer, once per token even when two ticks overlap; a pass re-enables, a
failure keeps the token suspended; suspensions PostgreSQL missed are reconciled."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from .conftest import Call, add, pick, release


class _Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Health)
        self.seen: Counter[str] = Counter()
        self.status = 200
        self.delay_s = 0.3
        self.lock = threading.Lock()


class _Health(BaseHTTPRequestHandler):
    server: _Upstream

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.seen[self.headers.get("Authorization", "")] += 1
        time.sleep(self.server.delay_s)
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def upstream() -> Iterator[_Upstream]:
    server = _Upstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _suspend(tokens: Call, count: int = 5) -> None:
    leases = [pick(tokens, lease_ms=60_000).json["lease_id"] for _ in range(count)]
    for lease_id in leases:
        release(tokens, lease_id, "failure")


def _statuses(tokens: Call) -> dict[str, str]:
    return {t["name"]: t["status"] for t in tokens("GET", "/api/v1/tokens").json["tokens"]}


def _health_url(tokens: Call, upstream: _Upstream) -> None:
    url = f"http://127.0.0.1:{upstream.server_address[1]}/v1/me"
    assert tokens("PUT", "/api/v1/tokens/pools/default", body={"health_url": url}).status == 200


def test_two_overlapping_ticks_probe_each_token_once_and_a_pass_re_enables(
    tokens: Call, upstream: _Upstream
) -> None:
    _health_url(tokens, upstream)
    add(tokens, "a", concurrency=5)
    _suspend(tokens)
    add(tokens, "b", concurrency=5, tier=1)
    _suspend(tokens)
    assert _statuses(tokens) == {"a": "suspended", "b": "suspended"}
    results: list[Any] = []
    ticks = [threading.Thread(target=lambda: results.append(tokens.tick())) for _ in range(2)]
    for tick in ticks:
        tick.start()
    for tick in ticks:
        tick.join()
    assert upstream.seen == Counter({"Bearer sk-a-secret-value": 1, "Bearer sk-b-secret-value": 1})
    assert sorted(str(r.get("skipped")) for r in results) == [
        "None",
        "another tick holds the lease",
    ]
    done = next(r for r in results if "skipped" not in r)
    assert done["probed"] == 2
    assert done["enabled"] == 2
    assert _statuses(tokens) == {"a": "active", "b": "active"}
    assert pick(tokens).status == 200


def test_a_failed_probe_keeps_the_token_suspended(tokens: Call, upstream: _Upstream) -> None:
    upstream.status = 503
    upstream.delay_s = 0
    _health_url(tokens, upstream)
    add(tokens, "a", concurrency=5)
    _suspend(tokens)
    summary = tokens.tick()
    assert summary["probed"] == 1
    assert summary["failed"] == 1
    assert _statuses(tokens) == {"a": "suspended"}
    assert pick(tokens).status == 429


def test_a_token_cooling_after_failures_is_probed_and_its_cooldown_ends_on_a_pass(
    tokens: Call, upstream: _Upstream
) -> None:
    upstream.delay_s = 0
    _health_url(tokens, upstream)
    add(tokens, "a", concurrency=5)
    _suspend(tokens, count=2)
    assert pick(tokens).status == 429
    summary = tokens.tick()
    assert (summary["probed"], summary["enabled"]) == (1, 1)
    assert pick(tokens).status == 200


def test_without_a_health_url_nothing_is_probed(tokens: Call, upstream: _Upstream) -> None:
    add(tokens, "a", concurrency=5)
    _suspend(tokens)
    summary = tokens.tick()
    assert summary["probed"] == 0
    assert not upstream.seen
    assert _statuses(tokens) == {"a": "suspended"}


def test_the_tick_records_a_suspension_postgres_missed(tokens: Call, token_env) -> None:
    from hybrid.db import database

    token = add(tokens, "a", concurrency=5)
    _suspend(tokens)
    with database(token_env["DATABASE_URL"]).transaction() as tx:
        tx.execute("UPDATE tokens SET status = 'active' WHERE id = :id", id=token["id"])
    summary = tokens.tick()
    assert summary["reconciled"] == 1
    with database(token_env["DATABASE_URL"]).transaction() as tx:
        assert tx.scalar("SELECT status FROM tokens WHERE id = :id", id=token["id"]) == (
            "suspended"
        )


def test_the_tick_pushes_a_pool_whose_redis_copy_is_missing(tokens: Call, endpoints) -> None:
    from hybrid.cache import redis_client

    add(tokens, "a")
    redis_client(endpoints.redis_url).flushdb()
    summary = tokens.tick()
    assert summary["synced"] == 1
    assert tokens.tick()["synced"] == 0
