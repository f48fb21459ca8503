"""status-probe: the minute probe of every connector and source, and the status API."""

from __future__ import annotations

from typing import Any

from hybrid.status.app import StatusProbeSettings, build_function

SETTINGS = StatusProbeSettings
_function = build_function()


def main_handler(event: dict[str, Any], context: Any) -> Any:
    return _function(event, context)
