"""token-pick's handler with Function URL and timer events, against the real stack."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.functions import FunctionCaller
from tests.support.http import HttpResult

INTERNAL_KEY = "internal-test-key-5d1f0c2a9e7b"
OPERATOR_KEY = "hop_token-pick-operator-key-91c3"
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


class TokenCaller(FunctionCaller):
    """token-pick's handler; requests carry the internal key unless told otherwise."""

    def __call__(  # type: ignore[override]
        self,
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
        return super().__call__(method, path, headers=all_headers, **kwargs)


@pytest.fixture
def tokens(token_env: dict[str, str]) -> TokenCaller:
    return TokenCaller("token_pick", timer_limit_ms=30_000)


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
