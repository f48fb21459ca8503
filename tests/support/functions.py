"""Load a function's handler module the way SCF does: from its file, as `index`, fresh."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


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
