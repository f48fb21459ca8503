"""token-pick: leases of upstream API tokens (internal key only), and the minute health tick."""

from __future__ import annotations

from typing import Any

from hybrid.tokens.app import TokenPickSettings, build_function

SETTINGS = TokenPickSettings
_function = build_function()


def main_handler(event: dict[str, Any], context: Any) -> Any:
    return _function(event, context)
