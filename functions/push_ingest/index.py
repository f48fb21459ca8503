"""push-ingest: batches, signed webhooks and large files (HTTP, COS uploads, minute timer)."""

from __future__ import annotations

from typing import Any

from hybrid.push.app import PushIngestSettings, build_function

SETTINGS = PushIngestSettings
_function = build_function()


def main_handler(event: dict[str, Any], context: Any) -> Any:
    return _function(event, context)
