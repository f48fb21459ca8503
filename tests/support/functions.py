"""Load a function's handler module the way SCF does: from its file, as `index`, fresh; call it
with Function URL and timer events, or as a relay connector would."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# The SECRETS_ENCRYPTION_KEY of the functions under test (`function_env`).
ENCRYPTION_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def load_function(folder: str) -> Any:
    spec = importlib.util.spec_from_file_location(
        f"{folder}_index_under_test", ROOT / "functions" / folder / "index.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TIMER_EVENT = ROOT / "tests" / "events" / "timer.json"


class FunctionCaller:
    """A function's handler as SCF invokes it: `caller(method, path, token=..., ...)` with a
    Function URL event (the result read back), `caller.tick()` with its timer event."""

    def __init__(self, folder: str, *, timer_limit_ms: int = 60_000) -> None:
        import json

        self.handler = load_function(folder)
        self.function_name = folder.replace("_", "-")
        self.timer_limit_ms = timer_limit_ms
        self._timer = json.loads(TIMER_EVENT.read_text())

    def __call__(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> Any:
        from tests.support.http import context, function_url_event, read_result

        event = function_url_event(method, path, token=token, **kwargs)
        return read_result(self.handler.main_handler(event, context(self.function_name)))

    def tick(self, limit_ms: int | None = None) -> Any:
        from tests.support.http import context

        limit = self.timer_limit_ms if limit_ms is None else limit_ms
        ctx = context(self.function_name) | {"time_limit_in_ms": limit}
        return self.handler.main_handler(self._timer, ctx)


def relay_caller() -> Callable[..., Any]:
    """connector-relay's handler, called as a relay connector would: signed over the request
    line with the connector's secret (or `sign_as`, to forge one)."""
    import time
    import uuid

    from hybrid.signing import sign_request
    from tests.support.http import context, function_url_event, read_result

    handler = load_function("connector_relay")

    def call(
        method: str,
        path: str,
        secret: str,
        *,
        body: bytes = b"",
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        sign_as: str | None = None,
    ) -> Any:
        target = path + (
            "?" + "&".join(f"{k}={v}" for k, v in sorted(query.items())) if query else ""
        )
        signed = sign_request(
            sign_as or secret,
            method,
            target,
            body,
            msg_id=f"msg_{uuid.uuid4().hex}",
            timestamp=int(time.time()),
        )
        event = function_url_event(
            method, path, raw_body=body, query=query, headers={**signed, **(headers or {})}
        )
        return read_result(handler.main_handler(event, context("connector-relay")))

    return call
