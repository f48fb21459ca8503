"""Raises (or returns something SCF cannot serialise), to exercise the error paths."""

from __future__ import annotations

from typing import Any


def main_handler(event: dict[str, Any], context: dict[str, Any]) -> Any:
    if event.get("mode") == "unserialisable":
        return {"when": object()}
    raise ValueError("boom")
