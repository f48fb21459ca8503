"""Build platform-shaped HTTP events and read handler results, for functional tests."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EVENTS_DIR = __import__("pathlib").Path(__file__).resolve().parent.parent / "events"


def function_url_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str | list[str]] | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """A Function URL event shaped like the real capture in tests/events/function_url.json."""
    event = json.loads((EVENTS_DIR / "function_url.json").read_text())
    all_headers = {"accept": "*/*", "user-agent": "pytest", "x-scf-request-id": str(uuid.uuid4())}
    if body is not None:
        raw_body = json.dumps(body).encode()
        all_headers["content-type"] = "application/json"
    if token is not None:
        all_headers["authorization"] = f"Bearer {token}"
    all_headers.update({k.lower(): v for k, v in (headers or {}).items()})
    payload = raw_body or b""
    try:
        text, encoded = payload.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(payload).decode(), True
    all_headers["content-length"] = str(len(payload))
    event.update(
        httpMethod=method,
        path=path,
        headers=all_headers,
        body=text,
        isBase64Encoded=encoded,
        queryString=dict(query or {}),
    )
    return event


def context(function_name: str = "admin-api") -> dict[str, Any]:
    return {
        "memory_limit_in_mb": 256,
        "time_limit_in_ms": 15000,
        "request_id": str(uuid.uuid4()),
        "environment": json.dumps({"SCF_NAMESPACE": "default"}),
        "environ": "SCF_NAMESPACE=default",
        "function_version": "$LATEST",
        "function_name": function_name,
        "namespace": "default",
        "tencentcloud_region": "ap-guangzhou",
        "tencentcloud_appid": "1250000000",
        "tencentcloud_uin": "100000000001",
    }


@dataclass
class HttpResult:
    status: int
    headers: dict[str, Any]
    body: bytes
    raw: dict[str, Any]

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return str(self.header("content-type") or "")

    def header(self, name: str) -> Any:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


def read_result(result: dict[str, Any]) -> HttpResult:
    assert isinstance(result["statusCode"], int)
    assert isinstance(result["isBase64Encoded"], bool)
    body = result.get("body", "")
    data = base64.b64decode(body) if result["isBase64Encoded"] else body.encode()
    json.dumps(result)  # the platform serialises the return value: it must be plain JSON
    return HttpResult(result["statusCode"], dict(result.get("headers", {})), data, result)
