"""cache-sync: the cached query API (HTTP) and the 5-minute refresh of hot queries (timer)."""

from __future__ import annotations

from typing import Any

from hybrid.hotcache.app import CacheSyncSettings, build_function

SETTINGS = CacheSyncSettings
_function = build_function()


def main_handler(event: dict[str, Any], context: Any) -> Any:
    return _function(event, context)
