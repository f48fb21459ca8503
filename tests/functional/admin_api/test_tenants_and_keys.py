"""Operators create tenants and keys; keys are shown once, hashed, scoped and revocable."""

from __future__ import annotations

import hashlib

from hybrid.db import database

from .conftest import Call


def test_operator_creates_a_tenant(admin: Call, operator_token: str) -> None:
    created = admin("POST", "/api/v1/admin/tenants", token=operator_token, body={"name": "Acme"})
    assert created.status == 201
    assert created.json["name"] == "Acme"
    assert created.json["id"].startswith("ten_")
    assert created.json["status"] == "active"
    assert created.header("X-Request-Id")
    listed = admin("GET", "/api/v1/admin/tenants", token=operator_token)
    assert [t["id"] for t in listed.json["tenants"]] == [created.json["id"]]


def test_duplicate_tenant_name_is_a_conflict(admin: Call, operator_token: str) -> None:
    assert (
        admin("POST", "/api/v1/admin/tenants", token=operator_token, body={"name": "Acme"}).status
        == 201
    )
    again = admin("POST", "/api/v1/admin/tenants", token=operator_token, body={"name": "acme"})
    assert again.status == 409
    assert again.content_type == "application/problem+json"


def test_missing_or_wrong_credentials_get_401_problem(admin: Call) -> None:
    for token in (None, "wrong-operator-key", "hk_0123456789abcdef_" + "x" * 43):
        result = admin("POST", "/api/v1/admin/tenants", token=token, body={"name": "Nope"})
        assert result.status == 401
        assert result.content_type == "application/problem+json"
        problem = result.json
        assert problem["status"] == 401
        assert problem["request_id"] == result.header("X-Request-Id")
        assert result.header("WWW-Authenticate")
    basic = admin("GET", "/api/v1/admin/tenants", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert basic.status == 401


def test_api_key_is_shown_once_and_stored_only_as_hash(
    admin: Call, tenant_factory, admin_env: dict[str, str]
) -> None:
    acme = tenant_factory("Acme")
    token = acme["key"]
    assert token.startswith("hk_")
    listed = admin("GET", f"/api/v1/admin/tenants/{acme['tenant_id']}/api-keys", token=token)
    assert listed.status == 200
    assert token not in listed.body.decode()
    assert all(
        "key" not in item and "secret_sha256" not in item for item in listed.json["api_keys"]
    )
    with database(admin_env["DATABASE_URL"]).transaction() as tx:
        row = tx.one("SELECT secret_sha256 FROM api_keys WHERE id = :id", id=acme["key_id"])
    assert row is not None
    secret = token.split("_", 2)[2]
    assert bytes(row["secret_sha256"]) == hashlib.sha256(secret.encode()).digest()


def test_revoked_key_is_refused_at_once(admin: Call, tenant_factory, operator_token: str) -> None:
    acme = tenant_factory("Acme")
    path = f"/api/v1/admin/tenants/{acme['tenant_id']}"
    assert admin("GET", path, token=acme["key"]).status == 200
    revoked = admin("DELETE", f"/api/v1/admin/api-keys/{acme['key_id']}", token=operator_token)
    assert revoked.status == 204
    assert admin("GET", path, token=acme["key"]).status == 401
    # Revoking twice is harmless.
    assert (
        admin("DELETE", f"/api/v1/admin/api-keys/{acme['key_id']}", token=operator_token).status
        == 204
    )


def test_tampered_key_secret_is_refused(admin: Call, tenant_factory) -> None:
    acme = tenant_factory("Acme")
    token = acme["key"]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert admin("GET", f"/api/v1/admin/tenants/{acme['tenant_id']}", token=flipped).status == 401


def test_key_without_admin_scope_is_forbidden(admin: Call, tenant_factory) -> None:
    reader = tenant_factory("Reader", scopes=["status:read"])
    result = admin("GET", f"/api/v1/admin/tenants/{reader['tenant_id']}", token=reader["key"])
    assert result.status == 403
    assert "admin" in result.json["detail"]


def test_tenant_admin_cannot_create_tenants_or_set_quotas(admin: Call, tenant_factory) -> None:
    acme = tenant_factory("Acme")
    assert (
        admin("POST", "/api/v1/admin/tenants", token=acme["key"], body={"name": "Other"}).status
        == 403
    )
    quota = admin(
        "PUT",
        f"/api/v1/admin/tenants/{acme['tenant_id']}/quota",
        token=acme["key"],
        body={"daily_records": 1, "monthly_records": 1, "rpm": 1},
    )
    assert quota.status == 403


def test_tenant_admin_creates_scoped_keys_for_its_tenant(admin: Call, tenant_factory) -> None:
    acme = tenant_factory("Acme")
    created = admin(
        "POST",
        f"/api/v1/admin/tenants/{acme['tenant_id']}/api-keys",
        token=acme["key"],
        body={"name": "ingest", "scopes": ["ingest:write"]},
    )
    assert created.status == 201
    assert created.header("Cache-Control") == "no-store"
    assert created.json["scopes"] == ["ingest:write"]
    ingest_key = created.json["key"]
    # An ingest key is not an admin key.
    result = admin("GET", f"/api/v1/admin/tenants/{acme['tenant_id']}/api-keys", token=ingest_key)
    assert result.status == 403


def test_unknown_scope_is_rejected(admin: Call, tenant_factory) -> None:
    acme = tenant_factory("Acme")
    result = admin(
        "POST",
        f"/api/v1/admin/tenants/{acme['tenant_id']}/api-keys",
        token=acme["key"],
        body={"name": "x", "scopes": ["root"]},
    )
    assert result.status == 422
    assert result.json["errors"][0]["loc"][:1] == ["scopes"]


def test_quota_set_by_operator_is_read_by_tenant(
    admin: Call, tenant_factory, operator_token: str
) -> None:
    acme = tenant_factory("Acme")
    path = f"/api/v1/admin/tenants/{acme['tenant_id']}/quota"
    empty = admin("GET", path, token=acme["key"])
    assert empty.json["daily_records"] is None
    body = {"daily_records": 100000, "monthly_records": 2000000, "rpm": 600}
    stored = admin("PUT", path, token=operator_token, body=body)
    assert stored.status == 200
    read = admin("GET", path, token=acme["key"])
    assert {k: read.json[k] for k in body} == body
    assert admin("PUT", path, token=operator_token, body={"rpm": 0}).status == 422
