"""connector-relay: long-polled jobs and result chunks of outbound-only connectors (HTTP)."""

from __future__ import annotations

from typing import Any

from hybrid.relay.app import ConnectorRelaySettings, build_function

SETTINGS = ConnectorRelaySettings
_function = build_function()


def main_handler(event: dict[str, Any], context: Any) -> Any:
    return _function(event, context)
