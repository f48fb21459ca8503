"""The connection is reused across warm invocations and reopened after it drops; a database
that is down answers 503 with Retry-After, never a stack trace."""

from __future__ import annotations

from hybrid.db import database

from .conftest import Call


def test_connection_is_reused_across_warm_invocations(
    admin: Call, operator_token: str, admin_env: dict[str, str]
) -> None:
    admin("GET", "/api/v1/admin/tenants", token=operator_token)
    db = database(admin_env["DATABASE_URL"])
    with db.transaction() as tx:
        first_pid = tx.scalar("SELECT pg_backend_pid()")
    for _ in range(5):
        assert admin("GET", "/api/v1/admin/tenants", token=operator_token).status == 200
    with db.transaction() as tx:
        assert tx.scalar("SELECT pg_backend_pid()") == first_pid


def test_dropped_connection_is_reopened(
    admin: Call, operator_token: str, admin_env: dict[str, str], endpoints
) -> None:
    url = admin_env["DATABASE_URL"]
    assert admin("GET", "/api/v1/admin/tenants", token=operator_token).status == 200
    with database(url).transaction() as tx:
        victim = tx.scalar("SELECT pg_backend_pid()")
    # Another session kills ours, as a failover or an idle timeout would.
    from hybrid.db import Database

    killer = Database(url, application_name="killer")
    with killer.transaction() as tx:
        assert tx.scalar("SELECT pg_terminate_backend(:pid)", pid=victim) is True
    killer.close()
    result = admin("GET", "/api/v1/admin/tenants", token=operator_token)
    assert result.status == 200


def test_database_down_answers_503_with_retry_after(
    admin: Call, operator_token: str, stack
) -> None:
    if not hasattr(stack, "stop_postgres"):
        import pytest

        pytest.skip("an external PostgreSQL cannot be stopped by the tests")
    stack.stop_postgres()
    try:
        result = admin(
            "POST", "/api/v1/admin/tenants", token=operator_token, body={"name": "While down"}
        )
        assert result.status == 503
        assert result.header("Retry-After")
        assert result.content_type == "application/problem+json"
        assert "Traceback" not in result.body.decode()
    finally:
        stack.start_postgres()
    assert (
        admin("POST", "/api/v1/admin/tenants", token=operator_token, body={"name": "After"}).status
        == 201
    )


def test_secrets_store_down_answers_503_not_500(
    admin: Call, operator_token: str, monkeypatch, unused_tcp_port: int
) -> None:
    """OPERATOR_KEY held in SSM while SSM cannot be reached: a retryable 503."""
    from hybrid import secrets
    from hybrid.config import clear_settings_cache

    monkeypatch.setenv("OPERATOR_KEY", "ssm://hybrid/operator-key?version=v1")
    monkeypatch.setenv("TENCENTCLOUD_SSM_ENDPOINT", f"http://127.0.0.1:{unused_tcp_port}")
    monkeypatch.setenv("TENCENTCLOUD_SECRETID", "AKIDlocaltest")
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", "local-test-secret-key")
    clear_settings_cache()
    secrets.clear_cache()
    result = admin("GET", "/api/v1/admin/tenants", token=operator_token)
    assert result.status == 503
    assert result.header("Retry-After")
    assert "local-test-secret-key" not in result.body.decode()
