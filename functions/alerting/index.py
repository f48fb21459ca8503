"""alerting: alert events from the outbox (queue wake-ups and a minute sweep), alerts, silences
and channels (HTTP)."""

from __future__ import annotations

from typing import Any

from hybrid.alerting.app import AlertingSettings, build_function

SETTINGS = AlertingSettings
_function = build_function()


def main_handler(event: dict[str, Any], context: Any) -> Any:
    return _function(event, context)
