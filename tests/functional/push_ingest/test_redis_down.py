"""Redis down: pushes still succeed with conservative per-instance limits, and idempotency
still holds because it lives in PostgreSQL."""

from __future__ import annotations

from .conftest import Call, records


def test_push_succeeds_and_idempotency_holds_without_redis(
    push: Call, tenant, stack, capfd
) -> None:
    acme = tenant()
    body = {"source": "crm", "records": records(2)}
    headers = {"Idempotency-Key": "redis-down"}
    stack.stop_redis()
    try:
        first = push(
            "POST", "/api/v1/sync/push/batch", token=acme["key"], body=body, headers=headers
        )
        again = push(
            "POST", "/api/v1/sync/push/batch", token=acme["key"], body=body, headers=headers
        )
    finally:
        stack.start_redis()
    assert first.status == 200, first.json
    assert again.header("Idempotent-Replayed") == "true"
    assert again.json == first.json
    logs = "".join(capfd.readouterr())
    assert "rate limiting degraded" in logs
