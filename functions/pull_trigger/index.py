"""pull-trigger: sync jobs (HTTP) and the minute timer that starts and drives pulls."""

from __future__ import annotations

from typing import Any

from hybrid.pull.app import PullTriggerSettings, build_function

SETTINGS = PullTriggerSettings
_function = build_function()


def main_handler(event: dict[str, Any], context: Any) -> Any:
    return _function(event, context)
