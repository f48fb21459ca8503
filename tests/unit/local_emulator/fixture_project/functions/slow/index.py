"""Sleeps longer than its 1 s time limit unless told otherwise."""

from __future__ import annotations

import os
import time
from typing import Any


def main_handler(event: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    seconds = float((event.get("queryString") or {}).get("s", event.get("sleep", 5)))
    time.sleep(seconds)
    return {"slept": seconds, "pid": os.getpid()}
