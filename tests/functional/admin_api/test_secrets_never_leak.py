"""No secret appears in any log line, error or response except the one-time creation response."""

from __future__ import annotations

import pytest

from hybrid.config import clear_settings_cache

from .conftest import OPERATOR_KEY, Call


def test_canary_secrets_stay_out_of_logs_and_errors(
    admin: Call,
    tenant_factory,
    admin_env: dict[str, str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    acme = tenant_factory("Acme")
    connector = admin(
        "POST",
        "/api/v1/admin/connectors",
        token=acme["key"],
        body={"name": "edge", "transport": "relay"},
    )
    connector_secret = connector.json["secret"]
    db_password = admin_env["DATABASE_URL"].split(":")[2].split("@")[0]
    # Failure paths: wrong keys, bad bodies, not found, forbidden, an echo attempt.
    responses = [
        admin("GET", "/api/v1/admin/tenants", token=OPERATOR_KEY + "x"),
        admin("GET", "/api/v1/admin/tenants", token=acme["key"]),
        admin(
            "POST",
            "/api/v1/admin/tenants",
            token=OPERATOR_KEY,
            body={"name": connector_secret * 20},
        ),
        admin(
            "POST",
            "/api/v1/admin/tenants",
            token=OPERATOR_KEY,
            body={"name": "x", OPERATOR_KEY: acme["key"]},
        ),
        admin("GET", f"/api/v1/admin/connectors/{connector.json['id']}", token=acme["key"]),
        admin("GET", "/api/v1/admin/connectors", token=OPERATOR_KEY),
        admin("GET", "/api/v1/admin/audit", token=OPERATOR_KEY),
    ]
    out, err = capfd.readouterr()
    logs = out + err
    assert '"request handled"' in logs
    canaries = {
        "operator key": OPERATOR_KEY,
        "api key": acme["key"],
        "api key secret": acme["key"].split("_", 2)[2],
        "connector secret": connector_secret,
        "database password": db_password,
        "encryption key": admin_env["SECRETS_ENCRYPTION_KEY"],
    }
    for label, canary in canaries.items():
        assert canary not in logs, f"{label} leaked into the logs"
        for response in responses:
            assert canary not in response.body.decode(), f"{label} leaked into a response"
            assert canary not in str(response.headers), f"{label} leaked into headers"


def test_database_password_not_in_config_errors(
    admin: Call,
    admin_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://hybrid:pw-canary-91c2e7@127.0.0.1:1/x")
    monkeypatch.setenv("APP_ENV", "not-an-env")
    clear_settings_cache()
    result = admin("GET", "/api/v1/admin/tenants", token=OPERATOR_KEY)
    assert result.status == 500
    assert result.json["detail"].startswith("an unexpected error")
    logs = "".join(capfd.readouterr())
    assert "APP_ENV" in logs
    assert "pw-canary-91c2e7" not in logs + result.body.decode()
    assert OPERATOR_KEY not in logs
