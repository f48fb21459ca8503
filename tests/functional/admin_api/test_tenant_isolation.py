"""One tenant's key can never see or change another tenant's objects."""

from __future__ import annotations

from .conftest import Call


def test_other_tenants_objects_read_as_not_found(admin: Call, tenant_factory) -> None:
    acme, globex = tenant_factory("Acme"), tenant_factory("Globex")
    g_connector = admin(
        "POST",
        "/api/v1/admin/connectors",
        token=globex["key"],
        body={"name": "g-relay", "transport": "relay"},
    ).json
    a = acme["key"]
    g = globex["tenant_id"]
    probes = [
        ("GET", f"/api/v1/admin/tenants/{g}", None),
        ("GET", f"/api/v1/admin/tenants/{g}/api-keys", None),
        ("POST", f"/api/v1/admin/tenants/{g}/api-keys", {"name": "x", "scopes": ["admin"]}),
        ("GET", f"/api/v1/admin/tenants/{g}/quota", None),
        ("DELETE", f"/api/v1/admin/api-keys/{globex['key_id']}", None),
        ("GET", f"/api/v1/admin/connectors/{g_connector['id']}", None),
        ("DELETE", f"/api/v1/admin/connectors/{g_connector['id']}", None),
        (
            "POST",
            "/api/v1/admin/connectors",
            {"name": "sneaky", "transport": "relay", "tenant_id": g},
        ),
    ]
    for method, path, body in probes:
        result = admin(method, path, token=a, body=body)
        assert result.status == 404, (method, path, result.json)
        assert g not in result.body.decode()
        assert g_connector["id"] not in result.body.decode()
    # Globex's key still works and its connector is untouched.
    assert admin("GET", f"/api/v1/admin/tenants/{g}", token=globex["key"]).status == 200
    assert (
        admin("GET", f"/api/v1/admin/connectors/{g_connector['id']}", token=globex["key"]).status
        == 200
    )


def test_lists_and_audit_show_only_the_callers_tenant(admin: Call, tenant_factory) -> None:
    acme, globex = tenant_factory("Acme"), tenant_factory("Globex")
    admin(
        "POST",
        "/api/v1/admin/connectors",
        token=globex["key"],
        body={"name": "g-relay", "transport": "relay"},
    )
    admin(
        "POST",
        "/api/v1/admin/connectors",
        token=acme["key"],
        body={"name": "a-relay", "transport": "relay"},
    )
    listed = admin(
        "GET",
        "/api/v1/admin/connectors",
        token=acme["key"],
        query={"tenant_id": globex["tenant_id"]},
    )
    assert [c["name"] for c in listed.json["connectors"]] == ["a-relay"]
    audit = admin("GET", "/api/v1/admin/audit", token=acme["key"]).json["entries"]
    assert {entry["tenant_id"] for entry in audit} == {acme["tenant_id"]}
    chosen = admin(
        "GET", "/api/v1/admin/audit", token=acme["key"], query={"tenant_id": globex["tenant_id"]}
    )
    assert chosen.status == 403
