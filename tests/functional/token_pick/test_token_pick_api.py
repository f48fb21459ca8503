"""token-pick over Function URL events: auth, validation, the lease round trip, limits (429 and
waiting), secrets kept out of listings and logs, suspension, and recovery after a Redis flush."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from .conftest import INTERNAL_KEY, OPERATOR_KEY, Call, add, pick, release


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/tokens/pick"),
        ("POST", "/api/v1/tokens/release"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens/tok_0123456789abcdef/resume"),
        ("POST", "/api/v1/tokens/pause-high-risk"),
    ],
)
def test_every_route_answers_401_without_the_right_internal_key(
    tokens: Call, method: str, path: str
) -> None:
    for key in (None, "wrong-key", INTERNAL_KEY + "x"):
        result = tokens(method, path, key=key, body={})
        assert result.status == 401, (key, result.json)
        assert result.content_type.startswith("application/problem+json")


def test_a_tenant_api_key_is_not_an_internal_credential(tokens: Call, token_env) -> None:
    from hybrid.auth.store import create_api_key
    from hybrid.db import database
    from hybrid.tenants import create_tenant

    with database(token_env["DATABASE_URL"]).transaction() as tx:
        tenant = create_tenant(tx, "Acme")
        _key, token = create_api_key(tx, tenant_id=tenant.id, name="k", scopes=("admin",))
    # Valid, but not a credential for token-pick: 403 on the admin routes, 401 on the leases.
    result = tokens("GET", "/api/v1/tokens", key=None, token=token.token)
    assert result.status == 403
    assert tokens("POST", "/api/v1/tokens/pick", key=None, token=token.token).status == 401
    assert tokens("GET", "/api/v1/tokens", key=token.token).status == 401


def test_the_operator_key_administers_tokens_but_never_leases_one(tokens: Call) -> None:
    created = tokens(
        "POST",
        "/api/v1/tokens",
        key=None,
        token=OPERATOR_KEY,
        body={"name": "ops", "secret": "sk-operator-added", "rpm": 10, "concurrency": 1},
    )
    assert created.status == 201, created.json
    listed = tokens("GET", "/api/v1/tokens", key=None, token=OPERATOR_KEY)
    assert [t["name"] for t in listed.json["tokens"]] == ["ops"]
    assert "sk-operator-added" not in listed.body.decode()
    paused = tokens(
        "POST", f"/api/v1/tokens/{created.json['id']}/pause", key=None, token=OPERATOR_KEY
    )
    assert paused.status == 200, paused.json
    assert tokens("POST", "/api/v1/tokens/pick", key=None, token=OPERATOR_KEY).status == 401
    assert tokens("GET", "/api/v1/tokens", key=None, token=OPERATOR_KEY + "x").status == 401


@pytest.mark.parametrize(
    "body",
    [
        {"name": "t", "secret": "s", "rpm": 0, "concurrency": 1},
        {"name": "t", "secret": "s", "rpm": 10},
        {"name": "t", "secret": "s", "rpm": 10, "concurrency": 1, "pool": "bad pool{x}"},
        {"name": "t", "secret": "s", "rpm": "10", "concurrency": 1},
        {"name": "t", "secret": "s", "rpm": 10, "concurrency": 1, "weight": 0},
        {"name": "t", "secret": "s", "rpm": 10, "concurrency": 1, "unknown": True},
    ],
)
def test_invalid_tokens_are_refused_with_422_problems(tokens: Call, body: dict) -> None:
    result = tokens("POST", "/api/v1/tokens", body=body)
    assert result.status == 422, result.json
    assert result.content_type.startswith("application/problem+json")
    assert result.json["errors"]
    assert "s" not in [error.get("input") for error in result.json["errors"]]


def test_malformed_requests_and_unknown_objects(tokens: Call) -> None:
    assert tokens("POST", "/api/v1/tokens/pick", raw_body=b"{nope").status == 400
    bad_release = release(tokens, "not-a-lease", outcome="success")
    assert bad_release.status == 422
    assert release(tokens, "default:tok_0123456789abcdef:" + "0" * 24, "exploded").status == 422
    assert pick(tokens, wait_ms=-1).status == 422
    assert pick(tokens, pool="nowhere").status == 404
    assert tokens("POST", "/api/v1/tokens/tok_0123456789abcdef/pause").status == 404
    assert tokens("POST", "/api/v1/tokens/tok_0123456789abcdef/resume").status == 404
    add(tokens, "dup")
    again = tokens(
        "POST",
        "/api/v1/tokens",
        body={"name": "dup", "secret": "x", "rpm": 1, "concurrency": 1},
    )
    assert again.status == 409


def test_a_lease_round_trip_and_a_second_release_is_harmless(tokens: Call) -> None:
    token = add(tokens, "t1", rpm=10, rph=100, rpd=1000, concurrency=2, tier=0, weight=3)
    assert token["limits"] == {"rpm": 10, "rph": 100, "rpd": 1000, "concurrency": 2}
    before = datetime.now(timezone.utc)
    result = pick(tokens, lease_ms=30_000)
    assert result.status == 200, result.json
    lease = result.json
    assert lease["token_id"] == token["id"]
    assert lease["secret"] == "sk-t1-secret-value"
    assert result.header("Cache-Control") == "no-store"
    expires, not_before = _time(lease["lease_expires_at"]), _time(lease["not_before"])
    assert timedelta(seconds=25) < expires - before < timedelta(seconds=35)
    assert timedelta(seconds=0.4) < not_before - before < timedelta(seconds=3.5)
    listed = tokens("GET", "/api/v1/tokens").json["tokens"][0]
    assert listed["usage"] == {"minute": 1, "hour": 1, "day": 1, "leases": 1}
    assert release(tokens, lease["lease_id"], "success").status == 204
    assert release(tokens, lease["lease_id"], "failure").status == 204
    listed = tokens("GET", "/api/v1/tokens").json["tokens"][0]
    assert listed["usage"]["leases"] == 0
    assert listed["consecutive_failures"] == 0
    assert listed["cooldown_until"] is None


def test_secrets_never_appear_in_the_listing_the_database_or_the_logs(
    tokens: Call, token_env, capfd
) -> None:
    from hybrid.db import database

    secret = "sk-canary-9f8e7d6c5b4a39281706"
    add(tokens, "canary", secret=secret)
    lease = pick(tokens).json
    release(tokens, lease["lease_id"], "failure")
    listing = tokens("GET", "/api/v1/tokens")
    assert listing.status == 200
    assert secret.encode() not in listing.body
    assert "secret" not in listing.json["tokens"][0]
    with database(token_env["DATABASE_URL"]).transaction() as tx:
        sealed = bytes(tx.scalar("SELECT secret_sealed FROM tokens"))
        audit = str(tx.rows("SELECT * FROM audit_log"))
    assert secret.encode() not in sealed
    assert secret not in audit
    logs = "".join(capfd.readouterr())
    assert "request handled" in logs
    assert secret not in logs


def test_when_every_token_is_limited_pick_answers_429_with_retry_after(tokens: Call) -> None:
    add(tokens, "slow", rpm=1)
    assert pick(tokens).status == 200
    denied = pick(tokens)
    assert denied.status == 429
    assert denied.content_type.startswith("application/problem+json")
    assert 55 <= int(denied.header("Retry-After")) <= 60


def test_wait_ms_waits_for_the_earliest_recovery_and_not_beyond(tokens: Call) -> None:
    add(tokens, "single", concurrency=1)
    assert pick(tokens, lease_ms=1_000).status == 200
    started = time.monotonic()
    short = pick(tokens, wait_ms=200, lease_ms=1_000)
    assert short.status == 429
    assert time.monotonic() - started < 0.5
    assert short.header("Retry-After") == "1"
    started = time.monotonic()
    waited = pick(tokens, wait_ms=3_000, lease_ms=1_000)
    elapsed = time.monotonic() - started
    assert waited.status == 200, waited.json
    assert 0.5 < elapsed < 2.5


def test_five_failures_suspend_the_token_in_postgres_and_raise_an_alert(
    tokens: Call, token_env
) -> None:
    from hybrid.db import database
    from hybrid.tenants import create_tenant

    with database(token_env["DATABASE_URL"]).transaction() as tx:
        tenant = create_tenant(tx, "Ops")
    put = tokens("PUT", "/api/v1/tokens/pools/default", body={"alert_tenant_id": tenant.id})
    assert put.status == 200, put.json
    token = add(tokens, "flaky", concurrency=5)
    leases = [pick(tokens, lease_ms=60_000).json["lease_id"] for _ in range(5)]
    for lease_id in leases:
        assert release(tokens, lease_id, "failure").status == 204
    listed = tokens("GET", "/api/v1/tokens").json["tokens"][0]
    assert listed["status"] == "suspended"
    assert listed["consecutive_failures"] == 5
    denied = pick(tokens)
    assert denied.status == 429
    assert denied.header("Retry-After") == "60"
    with database(token_env["DATABASE_URL"]).transaction() as tx:
        row = tx.one("SELECT status, status_reason FROM tokens WHERE id = :id", id=token["id"])
        events = tx.rows("SELECT payload FROM outbox WHERE topic = 'alerts'")
    assert row == {"status": "suspended", "status_reason": "consecutive failures"}
    assert [e["payload"]["labels"]["alertname"] for e in events] == ["TokenSuspended"]
    assert events[0]["payload"]["status"] == "firing"
    resumed = tokens("POST", f"/api/v1/tokens/{token['id']}/resume")
    assert resumed.status == 200
    assert resumed.json["status"] == "active"
    assert pick(tokens).status == 200
    with database(token_env["DATABASE_URL"]).transaction() as tx:
        states = [r["payload"]["status"] for r in tx.rows("SELECT payload FROM outbox ORDER BY id")]
    assert states == ["firing", "resolved"]


def test_rate_limited_cools_the_token_down_for_the_upstream_retry_after(tokens: Call) -> None:
    add(tokens, "limited")
    lease = pick(tokens).json
    assert release(tokens, lease["lease_id"], "rate_limited", retry_after_s=90).status == 204
    listed = tokens("GET", "/api/v1/tokens").json["tokens"][0]
    cooldown = _time(listed["cooldown_until"]) - datetime.now(timezone.utc)
    assert timedelta(seconds=80) < cooldown <= timedelta(seconds=91)
    denied = pick(tokens)
    assert denied.status == 429
    assert 85 <= int(denied.header("Retry-After")) <= 90


def test_pause_resume_and_pause_high_risk(tokens: Call) -> None:
    risky = add(tokens, "risky", concurrency=5)
    steady = add(tokens, "steady", concurrency=5, tier=1)
    paused = tokens("POST", f"/api/v1/tokens/{steady['id']}/pause")
    assert paused.json["status"] == "paused"
    lease = pick(tokens).json
    assert lease["token_id"] == risky["id"]
    release(tokens, lease["lease_id"], "failure", latency_ms=4000)
    tokens("POST", f"/api/v1/tokens/{steady['id']}/resume")
    result = tokens("POST", "/api/v1/tokens/pause-high-risk", body={})
    assert result.status == 200
    assert [t["id"] for t in result.json["paused"]] == [risky["id"]]
    assert result.json["paused"][0]["risk"] == pytest.approx(1.0)
    statuses = {t["id"]: t["status"] for t in tokens("GET", "/api/v1/tokens").json["tokens"]}
    assert statuses == {risky["id"]: "paused", steady["id"]: "active"}
    assert pick(tokens).json["token_id"] == steady["id"]
    bad = tokens("POST", "/api/v1/tokens/pause-high-risk", body={"threshold": 2})
    assert bad.status == 422


def test_after_a_redis_flush_config_and_status_come_back_from_postgres(
    tokens: Call, endpoints
) -> None:
    from hybrid.cache import redis_client

    active = add(tokens, "active")
    paused = add(tokens, "paused")
    tokens("POST", f"/api/v1/tokens/{paused['id']}/pause")
    lease = pick(tokens).json
    release(tokens, lease["lease_id"], "rate_limited", retry_after_s=600)
    redis_client(endpoints.redis_url).flushdb()
    denied = pick(tokens)
    assert denied.status == 429  # the cooldown was kept in PostgreSQL
    assert int(denied.header("Retry-After")) > 500
    tokens("POST", f"/api/v1/tokens/{active['id']}/resume")
    redis_client(endpoints.redis_url).flushdb()
    picked = {pick(tokens).json["token_id"] for _ in range(5)}
    assert picked == {active["id"]}


def test_redis_down_pick_answers_503_with_retry_after_and_never_a_token(
    tokens: Call, stack
) -> None:
    add(tokens, "t1")
    assert pick(tokens).status == 200
    stack.stop_redis()
    try:
        down = pick(tokens)
        listing = tokens("GET", "/api/v1/tokens")
    finally:
        stack.start_redis()
    assert down.status == 503
    assert down.content_type.startswith("application/problem+json")
    assert int(down.header("Retry-After")) >= 1
    assert b"sk-t1" not in down.body
    assert listing.status == 503
