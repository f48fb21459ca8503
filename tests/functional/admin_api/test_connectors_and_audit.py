"""Connectors (secret shown once, sealed at rest) and the audit log of every change."""

from __future__ import annotations

from hybrid.connectors.registry import connector_secret
from hybrid.crypto import SecretBox
from hybrid.db import database

from .conftest import ENCRYPTION_KEY, Call

TUNNEL = {
    "name": "plant-a",
    "transport": "tunnel",
    "endpoint": "https://connector.plant-a.example:8443",
    "sources": [{"name": "erp", "engine": "mysql"}, {"name": "crm", "engine": "postgresql"}],
}


def test_connector_secret_is_shown_once_and_sealed_at_rest(
    admin: Call, tenant_factory, admin_env: dict[str, str]
) -> None:
    acme = tenant_factory("Acme")
    created = admin("POST", "/api/v1/admin/connectors", token=acme["key"], body=TUNNEL)
    assert created.status == 201
    secret = created.json["secret"]
    assert secret.startswith("whsec_")
    assert [s["name"] for s in created.json["sources"]] == ["erp", "crm"]
    connector_id = created.json["id"]
    listed = admin("GET", "/api/v1/admin/connectors", token=acme["key"])
    one = admin("GET", f"/api/v1/admin/connectors/{connector_id}", token=acme["key"])
    for result in (listed, one):
        assert result.status == 200
        assert secret not in result.body.decode()
        assert "secret" not in result.body.decode()
    assert [s["name"] for s in one.json["sources"]] == ["crm", "erp"]
    with database(admin_env["DATABASE_URL"]).transaction() as tx:
        raw = tx.one("SELECT secret_ciphertext FROM connectors WHERE id = :id", id=connector_id)
        assert raw is not None
        assert secret.encode() not in bytes(raw["secret_ciphertext"])
        assert connector_secret(tx, SecretBox(ENCRYPTION_KEY), connector_id) == secret


def test_tunnel_connector_needs_an_endpoint(admin: Call, tenant_factory) -> None:
    acme = tenant_factory("Acme")
    body = {**TUNNEL, "endpoint": None}
    result = admin("POST", "/api/v1/admin/connectors", token=acme["key"], body=body)
    assert result.status == 422
    relay = admin(
        "POST",
        "/api/v1/admin/connectors",
        token=acme["key"],
        body={"name": "edge", "transport": "relay"},
    )
    assert relay.status == 201
    assert relay.json["endpoint"] is None


def test_operator_must_name_the_connector_tenant(
    admin: Call, tenant_factory, operator_token: str
) -> None:
    acme = tenant_factory("Acme")
    missing = admin("POST", "/api/v1/admin/connectors", token=operator_token, body=TUNNEL)
    assert missing.status == 422
    created = admin(
        "POST",
        "/api/v1/admin/connectors",
        token=operator_token,
        body={**TUNNEL, "tenant_id": acme["tenant_id"]},
    )
    assert created.status == 201
    assert created.json["tenant_id"] == acme["tenant_id"]


def test_deleted_connector_is_gone(admin: Call, tenant_factory) -> None:
    acme = tenant_factory("Acme")
    connector_id = admin("POST", "/api/v1/admin/connectors", token=acme["key"], body=TUNNEL).json[
        "id"
    ]
    assert (
        admin("DELETE", f"/api/v1/admin/connectors/{connector_id}", token=acme["key"]).status == 204
    )
    assert admin("GET", f"/api/v1/admin/connectors/{connector_id}", token=acme["key"]).status == 404
    # The name is free again.
    assert admin("POST", "/api/v1/admin/connectors", token=acme["key"], body=TUNNEL).status == 201


def test_every_change_is_audited_for_its_tenant(
    admin: Call, tenant_factory, operator_token: str
) -> None:
    acme = tenant_factory("Acme")
    connector = admin("POST", "/api/v1/admin/connectors", token=acme["key"], body=TUNNEL)
    admin("DELETE", f"/api/v1/admin/connectors/{connector.json['id']}", token=acme["key"])
    entries = admin("GET", "/api/v1/admin/audit", token=acme["key"]).json["entries"]
    actions = [entry["action"] for entry in entries]
    assert actions == ["connector.delete", "connector.create", "api_key.create", "tenant.create"]
    assert entries[0]["actor"] == acme["key_id"]
    assert entries[-1]["actor"] == "operator"
    assert all(entry["tenant_id"] == acme["tenant_id"] for entry in entries)
    assert all(entry["request_id"] for entry in entries)
    only = admin(
        "GET", "/api/v1/admin/audit", token=acme["key"], query={"action": "connector.create"}
    ).json["entries"]
    assert [entry["action"] for entry in only] == ["connector.create"]


def test_audit_time_window_and_paging(admin: Call, tenant_factory) -> None:
    acme = tenant_factory("Acme")
    for index in range(3):
        admin(
            "POST",
            "/api/v1/admin/connectors",
            token=acme["key"],
            body={"name": f"relay-{index}", "transport": "relay"},
        )
    first = admin("GET", "/api/v1/admin/audit", token=acme["key"], query={"limit": "2"})
    assert len(first.json["entries"]) == 2
    second = admin(
        "GET",
        "/api/v1/admin/audit",
        token=acme["key"],
        query={"limit": "2", "before": first.json["next_before"]},
    )
    ids = [e["id"] for e in first.json["entries"] + second.json["entries"]]
    assert len(ids) == len(set(ids)) == 4
    future = admin(
        "GET", "/api/v1/admin/audit", token=acme["key"], query={"since": "2999-01-01T00:00:00Z"}
    )
    assert future.json["entries"] == []
    naive = admin(
        "GET", "/api/v1/admin/audit", token=acme["key"], query={"since": "2026-01-01T00:00:00"}
    )
    assert naive.status == 422
    backwards = admin(
        "GET",
        "/api/v1/admin/audit",
        token=acme["key"],
        query={"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
    )
    assert backwards.status == 422
