"""Conflicts are stored, listed by status and resolved through the API, per tenant."""

from __future__ import annotations

from hybrid.db import database

from .conftest import Call

BATCH = "/api/v1/sync/push/batch"


def _push(push: Call, key: str, data: dict, when: str, strategy: str = "manual_review"):
    return push(
        "POST",
        BATCH,
        token=key,
        body={
            "source": "crm",
            "conflict_strategy": strategy,
            "records": [{"key": "cust-1", "updated_at": when, "data": data}],
        },
    )


def test_manual_review_conflict_is_listed_and_resolved(push: Call, tenant, push_env) -> None:
    acme = tenant()
    _push(push, acme["key"], {"name": "current"}, "2026-11-20T08:00:00Z")
    second = _push(push, acme["key"], {"name": "incoming"}, "2026-11-21T08:00:00Z")
    assert second.json["results"][0]["status"] == "conflict"
    conflict_id = second.json["results"][0]["conflict_id"]
    pending = push(
        "GET", "/api/v1/sync/conflicts", token=acme["key"], query={"status": "PENDING"}
    ).json["conflicts"]
    assert [c["id"] for c in pending] == [conflict_id]
    assert pending[0]["incoming_data"] == {"name": "incoming"}
    assert pending[0]["current_data"] == {"name": "current"}
    resolved = push(
        "POST",
        f"/api/v1/sync/conflicts/{conflict_id}/resolve",
        token=acme["key"],
        body={"resolution": "take_incoming"},
    )
    assert resolved.status == 200, resolved.json
    assert resolved.json["status"] == "RESOLVED"
    with database(push_env["DATABASE_URL"]).transaction() as tx:
        assert tx.scalar("SELECT data FROM records WHERE key = 'cust-1'") == {"name": "incoming"}
    again = push(
        "POST",
        f"/api/v1/sync/conflicts/{conflict_id}/resolve",
        token=acme["key"],
        body={"resolution": "keep_current"},
    )
    assert again.status == 409
    assert (
        push("GET", "/api/v1/sync/conflicts", token=acme["key"], query={"status": "PENDING"}).json[
            "conflicts"
        ]
        == []
    )


def test_other_tenants_conflicts_are_invisible(push: Call, tenant) -> None:
    acme, globex = tenant("Acme"), tenant("Globex")
    _push(push, acme["key"], {"v": 1}, "2026-11-20T08:00:00Z")
    conflict_id = _push(push, acme["key"], {"v": 2}, "2026-11-21T08:00:00Z").json["results"][0][
        "conflict_id"
    ]
    assert push("GET", "/api/v1/sync/conflicts", token=globex["key"]).json["conflicts"] == []
    stolen = push(
        "POST",
        f"/api/v1/sync/conflicts/{conflict_id}/resolve",
        token=globex["key"],
        body={"resolution": "take_incoming"},
    )
    assert stolen.status == 404


def test_merge_resolution_needs_valid_data(push: Call, tenant) -> None:
    acme = tenant()
    _push(push, acme["key"], {"v": 1}, "2026-11-20T08:00:00Z")
    conflict_id = _push(push, acme["key"], {"v": 2}, "2026-11-21T08:00:00Z").json["results"][0][
        "conflict_id"
    ]
    path = f"/api/v1/sync/conflicts/{conflict_id}/resolve"
    assert push("POST", path, token=acme["key"], body={"resolution": "merge"}).status == 422
    merged = push("POST", path, token=acme["key"], body={"resolution": "merge", "data": {"v": 3}})
    assert merged.status == 200
