"""Bad input gets a clear problem+json 4xx, never a 5xx, and nothing is written."""

from __future__ import annotations

import json

import pytest

from hybrid.db import database
from tests.support.http import context, read_result

from .conftest import Call, load_handler_module


def _counts(url: str) -> dict[str, int]:
    with database(url).transaction() as tx:
        return {
            table: tx.scalar(f"SELECT count(*) FROM {table}")
            for table in ("tenants", "api_keys", "connectors", "audit_log")
        }


@pytest.mark.parametrize(
    ("raw", "headers", "status"),
    [
        (b'{"name": "Acme"', {"content-type": "application/json"}, 400),
        (b"", {"content-type": "application/json"}, 400),
        (b"\xff\xfe\x00garbage", {"content-type": "application/json"}, 400),
        (b'{"name": "Acme"}', {"content-type": "text/plain"}, 415),
        (b'{"name": 42}', {"content-type": "application/json"}, 422),
        (b'{"name": "Acme", "admin": true}', {"content-type": "application/json"}, 422),
        (b'["Acme"]', {"content-type": "application/json"}, 422),
        (b'{"name": ""}', {"content-type": "application/json"}, 422),
        (b'{"name": "' + b"x" * 300 + b'"}', {"content-type": "application/json"}, 422),
        (b"[" * 10000 + b"]" * 10000, {"content-type": "application/json"}, 400),
        (
            b'{"name": "' + b"x" * (6 * 1024 * 1024) + b'"}',
            {"content-type": "application/json"},
            413,
        ),
    ],
)
def test_bad_bodies_are_refused_without_writing(
    admin: Call,
    operator_token: str,
    admin_env: dict[str, str],
    raw: bytes,
    headers: dict[str, str],
    status: int,
) -> None:
    before = _counts(admin_env["DATABASE_URL"])
    result = admin(
        "POST", "/api/v1/admin/tenants", token=operator_token, raw_body=raw, headers=headers
    )
    assert result.status == status, result.body[:300]
    assert result.content_type == "application/problem+json"
    problem = result.json
    assert {"type", "title", "status", "detail", "request_id"} <= problem.keys()
    assert problem["status"] == status
    assert _counts(admin_env["DATABASE_URL"]) == before


def test_validation_errors_list_fields_without_echoing_input(
    admin: Call, operator_token: str
) -> None:
    result = admin(
        "POST",
        "/api/v1/admin/tenants",
        token=operator_token,
        body={"name": 42, "extra": "s3cr3t-value-not-echoed"},
    )
    assert result.status == 422
    locs = sorted(tuple(error["loc"]) for error in result.json["errors"])
    assert locs == [("extra",), ("name",)]
    assert "s3cr3t-value-not-echoed" not in result.body.decode()


def test_unknown_route_and_wrong_method(admin: Call, operator_token: str) -> None:
    missing = admin("GET", "/api/v1/admin/nothing-here", token=operator_token)
    assert missing.status == 404
    assert missing.content_type == "application/problem+json"
    wrong = admin("PATCH", "/api/v1/admin/tenants", token=operator_token)
    assert wrong.status == 405
    assert set(wrong.header("Allow").split(", ")) == {"GET", "POST"}


def test_malformed_ids_and_query_values(admin: Call, operator_token: str) -> None:
    assert admin("GET", "/api/v1/admin/tenants/ten_nope", token=operator_token).status == 404
    assert admin("GET", "/api/v1/admin/tenants/%00%27;DROP", token=operator_token).status == 404
    bad_limit = admin("GET", "/api/v1/admin/audit", token=operator_token, query={"limit": "many"})
    assert bad_limit.status == 422
    unknown = admin("GET", "/api/v1/admin/audit", token=operator_token, query={"sort": "x"})
    assert unknown.status == 422


@pytest.mark.parametrize(
    "event",
    [
        None,
        "GET /",
        [],
        {},
        {"httpMethod": 7, "path": "/api/v1/admin/tenants"},
        {"httpMethod": "POST", "path": "/api/v1/admin/tenants", "headers": "nope"},
        {
            "httpMethod": "POST",
            "path": "/api/v1/admin/tenants",
            "body": "%%%",
            "isBase64Encoded": True,
            "headers": {},
        },
        {"httpMethod": "GET", "path": ["x"], "headers": {}},
    ],
)
def test_malformed_events_get_400(admin_env: dict[str, str], event: object) -> None:
    module = load_handler_module()
    result = read_result(module.main_handler(event, context()))
    assert result.status == 400
    assert result.content_type == "application/problem+json"
    assert json.loads(result.body)["status"] == 400


def test_context_as_object_or_missing_still_works(
    admin_env: dict[str, str], operator_token: str
) -> None:
    from tests.support.http import function_url_event

    module = load_handler_module()

    class ContextObject:
        request_id = "req-object-1"
        function_name = "admin-api"
        time_limit_in_ms = "15000"

    event = function_url_event("GET", "/api/v1/admin/tenants", token=operator_token)
    as_object = read_result(module.main_handler(event, ContextObject()))
    assert as_object.status == 200
    assert as_object.header("X-Request-Id") == "req-object-1"
    as_none = read_result(module.main_handler(event, None))
    assert as_none.status == 200
    assert as_none.header("X-Request-Id")
