"""POST /api/v1/sync/push/batch: every record reported back, receipts, audit, atomicity."""

from __future__ import annotations

from hybrid.db import database

from .conftest import Call, records

BATCH = "/api/v1/sync/push/batch"


def _stored(url: str, tenant_id: str) -> dict[str, dict]:
    with database(url).transaction() as tx:
        rows = tx.rows(
            "SELECT key, data, deleted, version FROM records WHERE tenant_id = :t", t=tenant_id
        )
    return {row["key"]: row for row in rows}


def test_each_record_is_reported_back(push: Call, tenant, push_env) -> None:
    acme = tenant()
    first = push("POST", BATCH, token=acme["key"], body={"source": "crm", "records": records(3)})
    assert first.status == 200, first.json
    assert first.json["inserted"] == 3
    assert [r["status"] for r in first.json["results"]] == ["inserted"] * 3
    second = push(
        "POST",
        BATCH,
        token=acme["key"],
        body={
            "source": "crm",
            "records": [
                {
                    "key": "cust-0",
                    "updated_at": "2026-11-20T08:00:00Z",
                    "data": {"name": "客户 0", "tier": 0},
                },
                {
                    "key": "cust-1",
                    "updated_at": "2026-11-21T08:00:00Z",
                    "data": {"name": "changed"},
                },
                {"key": "cust-2", "op": "delete", "updated_at": "2026-11-21T08:00:00Z"},
                {"key": "cust-3", "updated_at": "not a time", "data": {}},
                {"key": "cust-1", "updated_at": "2026-11-01T08:00:00Z", "data": {"name": "stale"}},
            ],
        },
    )
    assert second.status == 200, second.json
    statuses = [r["status"] for r in second.json["results"]]
    assert statuses == ["unchanged", "updated", "deleted", "rejected", "conflict"]
    body = second.json
    assert (
        body["accepted"],
        body["unchanged"],
        body["updated"],
        body["deleted"],
        body["conflicts"],
    ) == (4, 1, 1, 1, 1)
    assert [r["index"] for r in body["rejected"]] == [3]
    assert body["rejected"][0]["errors"][0]["loc"] == ["updated_at"]
    stored = _stored(push_env["DATABASE_URL"], acme["tenant_id"])
    assert stored["cust-1"]["data"] == {"name": "changed"}
    assert stored["cust-2"]["deleted"] is True
    assert stored["cust-0"]["version"] == 1
    assert "cust-3" not in stored


def test_receipt_and_audit_entry_are_left(push: Call, tenant, push_env) -> None:
    acme = tenant()
    pushed = push("POST", BATCH, token=acme["key"], body={"source": "crm", "records": records(2)})
    receipt = push("GET", f"/api/v1/sync/receipts/{pushed.json['receipt_id']}", token=acme["key"])
    assert receipt.status == 200
    assert receipt.json["inserted"] == 2
    assert receipt.json["kind"] == "batch"
    assert receipt.json["request_id"] == pushed.header("X-Request-Id")
    with database(push_env["DATABASE_URL"]).transaction() as tx:
        actions = [
            r["action"]
            for r in tx.rows(
                "SELECT action FROM audit_log WHERE tenant_id = :t", t=acme["tenant_id"]
            )
        ]
        pending_archive = tx.scalar("SELECT count(*) FROM outbox WHERE topic = 'archive'")
    assert actions == ["push.batch"]
    assert pending_archive == 1


def test_atomic_batch_with_an_invalid_record_stores_nothing(push: Call, tenant, push_env) -> None:
    acme = tenant()
    batch = [*records(3), {"key": "bad", "updated_at": "2026-11-20T08:00:00Z"}]
    result = push(
        "POST", BATCH, token=acme["key"], body={"source": "crm", "records": batch, "atomic": True}
    )
    assert result.status == 422
    assert result.json["errors"][0]["loc"][:2] == ["records", "3"]
    assert _stored(push_env["DATABASE_URL"], acme["tenant_id"]) == {}


def test_poison_record_rejects_only_itself(push: Call, tenant, push_env) -> None:
    acme = tenant()
    batch = records(99)
    batch.insert(
        50,
        {
            "key": "poison",
            "updated_at": "2026-11-20T08:00:00Z",
            "data": {"text": "nul \u0000 byte"},
        },
    )
    result = push("POST", BATCH, token=acme["key"], body={"source": "crm", "records": batch})
    assert result.status == 200
    assert result.json["inserted"] == 99
    assert [r["index"] for r in result.json["rejected"]] == [50]
    assert len(_stored(push_env["DATABASE_URL"], acme["tenant_id"])) == 99


def test_too_many_records_or_a_bad_envelope_is_refused(push: Call, tenant) -> None:
    acme = tenant()
    too_many = push(
        "POST", BATCH, token=acme["key"], body={"source": "crm", "records": records(5001)}
    )
    assert too_many.status == 422
    for body in (
        {"records": records(1)},
        {"source": "CRM!", "records": records(1)},
        {"source": "crm", "records": []},
        {"source": "crm", "records": records(1), "conflict_strategy": "coin_flip"},
    ):
        assert push("POST", BATCH, token=acme["key"], body=body).status == 422


def test_scope_and_credentials_are_checked(push: Call, tenant) -> None:
    reader = tenant("Reader", scopes=("status:read",))
    body = {"source": "crm", "records": records(1)}
    assert push("POST", BATCH, body=body).status == 401
    assert push("POST", BATCH, token=reader["key"], body=body).status == 403


def test_tenants_never_see_or_touch_each_other(push: Call, tenant, push_env) -> None:
    acme, globex = tenant("Acme"), tenant("Globex")
    a = push("POST", BATCH, token=acme["key"], body={"source": "crm", "records": records(2)})
    g = push(
        "POST",
        BATCH,
        token=globex["key"],
        body={
            "source": "crm",
            "records": [
                {"key": "cust-0", "updated_at": "2026-11-22T08:00:00Z", "data": {"name": "globex"}}
            ],
        },
    )
    assert g.json["inserted"] == 1
    stored = _stored(push_env["DATABASE_URL"], acme["tenant_id"])
    assert stored["cust-0"]["data"] == {"name": "客户 0", "tier": 0}
    other = push("GET", f"/api/v1/sync/receipts/{a.json['receipt_id']}", token=globex["key"])
    assert other.status == 404
    assert acme["tenant_id"] not in other.body.decode()
