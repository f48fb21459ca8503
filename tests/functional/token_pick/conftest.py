"""token-pick's handler with Function URL and timer events, against the real stack."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.functions import load_function
from tests.support.http import HttpResult, context, function_url_event, read_result

INTERNAL_KEY = "internal-test-key-5d1f0c2a9e7b"
OPERATOR_KEY = "hop_token-pick-operator-key-91c3"
TIMER = json.loads((Path(__file__).resolve().parents[2] / "events" / "timer.json").read_text())
Call = Callable[..., HttpResult]


@pytest.fixture
def token_env(function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    from hybrid.config import clear_settings_cache

    extra = {
        "INTERNAL_API_KEY": INTERNAL_KEY,
        "OPERATOR_KEY": OPERATOR_KEY,
        "LEASE_JITTER_MIN_MS": "500",
        "LEASE_JITTER_MAX_MS": "3000",
    }
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    clear_settings_cache()
    return {**function_env, **extra}


@pytest.fixture
def tokens(token_env: dict[str, str]) -> Call:
    handler = load_function("token_pick")

    def call(
        method: str,
        path: str,
        *,
        key: str | None = INTERNAL_KEY,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> HttpResult:
        all_headers = dict(headers or {})
        if key is not None:
            all_headers["X-Internal-API-Key"] = key
        event = function_url_event(method, path, headers=all_headers, **kwargs)
        return read_result(handler.main_handler(event, context("token-pick")))

    call.tick = lambda: handler.main_handler(  # type: ignore[attr-defined]
        TIMER, context("token-pick") | {"time_limit_in_ms": 30_000}
    )
    return call


def add(tokens: Call, name: str = "t1", **fields: Any) -> dict[str, Any]:
    body = {"pool": "default", "name": name, "secret": f"sk-{name}-secret-value", "rpm": 60}
    body["concurrency"] = 5
    body.update(fields)
    result = tokens("POST", "/api/v1/tokens", body=body)
    assert result.status == 201, result.json
    return result.json


def pick(tokens: Call, **fields: Any) -> Any:
    return tokens("POST", "/api/v1/tokens/pick", body={"pool": "default", **fields})


def release(tokens: Call, lease_id: str, outcome: str = "success", **fields: Any) -> Any:
    body = {"lease_id": lease_id, "outcome": outcome, "latency_ms": 120, **fields}
    return tokens("POST", "/api/v1/tokens/release", body=body)
