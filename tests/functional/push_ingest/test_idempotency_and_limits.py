"""Idempotency-Key replays, conflicts and crashes; rate limits and record quotas."""

from __future__ import annotations

import pytest

from hybrid.db import database

from .conftest import Call, records

BATCH = "/api/v1/sync/push/batch"


def _count(url: str, tenant_id: str) -> int:
    with database(url).transaction() as tx:
        return int(tx.scalar("SELECT count(*) FROM records WHERE tenant_id = :t", t=tenant_id))


def _receipts(url: str, tenant_id: str) -> int:
    with database(url).transaction() as tx:
        return int(
            tx.scalar("SELECT count(*) FROM push_receipts WHERE tenant_id = :t", t=tenant_id)
        )


def test_same_key_and_body_replays_the_first_response(push: Call, tenant, push_env) -> None:
    acme = tenant()
    body = {"source": "crm", "records": records(3)}
    headers = {"Idempotency-Key": "order-42"}
    first = push("POST", BATCH, token=acme["key"], body=body, headers=headers)
    again = push("POST", BATCH, token=acme["key"], body=body, headers=headers)
    assert first.status == again.status == 200
    assert again.header("Idempotent-Replayed") == "true"
    assert first.header("Idempotent-Replayed") is None
    assert again.json == first.json
    assert _receipts(push_env["DATABASE_URL"], acme["tenant_id"]) == 1


def test_same_key_with_another_body_is_422(push: Call, tenant) -> None:
    acme = tenant()
    headers = {"Idempotency-Key": "order-43"}
    push(
        "POST",
        BATCH,
        token=acme["key"],
        body={"source": "crm", "records": records(1)},
        headers=headers,
    )
    other = push(
        "POST",
        BATCH,
        token=acme["key"],
        body={"source": "crm", "records": records(2)},
        headers=headers,
    )
    assert other.status == 422


def test_keys_are_per_tenant(push: Call, tenant) -> None:
    acme, globex = tenant("Acme"), tenant("Globex")
    headers = {"Idempotency-Key": "shared-key"}
    body = {"source": "crm", "records": records(1)}
    a = push("POST", BATCH, token=acme["key"], body=body, headers=headers)
    g = push("POST", BATCH, token=globex["key"], body=body, headers=headers)
    assert g.header("Idempotent-Replayed") is None
    assert g.json["receipt_id"] != a.json["receipt_id"]


def test_crash_after_commit_replays_on_retry(push: Call, tenant, push_env, monkeypatch) -> None:
    """The function dies after the write committed, before answering: the retry replays."""
    import hybrid.push.routes as routes

    acme = tenant()
    body = {"source": "crm", "records": records(5)}
    headers = {"Idempotency-Key": "crash-after"}
    original = routes._store_batch

    def crash_after_commit(*args, **kwargs):
        original(*args, **kwargs)
        raise RuntimeError("instance killed after commit")

    monkeypatch.setattr(routes, "_store_batch", crash_after_commit)
    crashed = push("POST", BATCH, token=acme["key"], body=body, headers=headers)
    assert crashed.status == 500
    monkeypatch.setattr(routes, "_store_batch", original)
    retried = push("POST", BATCH, token=acme["key"], body=body, headers=headers)
    assert retried.status == 200
    assert retried.header("Idempotent-Replayed") == "true"
    assert retried.json["inserted"] == 5
    assert _count(push_env["DATABASE_URL"], acme["tenant_id"]) == 5
    assert _receipts(push_env["DATABASE_URL"], acme["tenant_id"]) == 1


def test_crash_before_commit_applies_once_on_retry(
    push: Call, tenant, push_env, monkeypatch
) -> None:
    import hybrid.push.routes as routes

    acme = tenant()
    body = {"source": "crm", "records": records(5)}
    headers = {"Idempotency-Key": "crash-before"}
    original = routes.record_push

    def crash_mid_transaction(*args, **kwargs):
        raise RuntimeError("instance killed mid-transaction")

    monkeypatch.setattr(routes, "record_push", crash_mid_transaction)
    assert push("POST", BATCH, token=acme["key"], body=body, headers=headers).status == 500
    assert _count(push_env["DATABASE_URL"], acme["tenant_id"]) == 0
    monkeypatch.setattr(routes, "record_push", original)
    retried = push("POST", BATCH, token=acme["key"], body=body, headers=headers)
    assert retried.status == 200
    assert retried.header("Idempotent-Replayed") is None
    assert _count(push_env["DATABASE_URL"], acme["tenant_id"]) == 5


def test_rate_limit_answers_429_with_headers(push: Call, tenant, push_env) -> None:
    from hybrid.tenants import set_quota

    acme = tenant()
    with database(push_env["DATABASE_URL"]).transaction() as tx:
        set_quota(tx, acme["tenant_id"], daily_records=None, monthly_records=None, rpm=2)
    body = {"source": "crm", "records": records(1)}
    results = [push("POST", BATCH, token=acme["key"], body=body) for _ in range(3)]
    assert [r.status for r in results] == [200, 200, 429]
    limited = results[2]
    assert int(limited.header("Retry-After")) >= 1
    assert "tenant" in limited.header("RateLimit-Policy")
    assert results[0].header("RateLimit")
    assert limited.content_type == "application/problem+json"


def test_daily_quota_exhaustion_is_429_with_reset_and_80_percent_alert(
    push: Call, tenant, push_env
) -> None:
    from hybrid.tenants import set_quota

    acme = tenant()
    with database(push_env["DATABASE_URL"]).transaction() as tx:
        set_quota(tx, acme["tenant_id"], daily_records=10, monthly_records=None, rpm=None)
    ok = push("POST", BATCH, token=acme["key"], body={"source": "crm", "records": records(8)})
    assert ok.status == 200
    over = push(
        "POST", BATCH, token=acme["key"], body={"source": "crm", "records": records(5, start=100)}
    )
    assert over.status == 429
    assert "resets at" in over.json["detail"]
    assert int(over.header("Retry-After")) > 0
    assert _count(push_env["DATABASE_URL"], acme["tenant_id"]) == 8
    with database(push_env["DATABASE_URL"]).transaction() as tx:
        events = tx.rows("SELECT payload FROM outbox WHERE topic = 'alerts'")
    assert [e["payload"]["type"] for e in events] == ["quota.threshold"]


@pytest.mark.parametrize("bad_key", ["", "x" * 300, "tab\there"])
def test_malformed_idempotency_key_is_400(push: Call, tenant, bad_key: str) -> None:
    acme = tenant()
    result = push(
        "POST",
        BATCH,
        token=acme["key"],
        body={"source": "crm", "records": records(1)},
        headers={"Idempotency-Key": bad_key},
    )
    assert result.status == 400
