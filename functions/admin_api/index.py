"""admin-api: tenants, API keys, connectors, quotas and the audit log (HTTP)."""

from __future__ import annotations

from typing import Any

from hybrid.admin.app import AdminApiSettings, build_function

SETTINGS = AdminApiSettings
_function = build_function()


def main_handler(event: dict[str, Any], context: Any) -> Any:
    return _function(event, context)
