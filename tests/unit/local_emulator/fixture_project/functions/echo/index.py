"""Returns what it was given, plus enough of its instance to check isolation and warmth."""

from __future__ import annotations

import os
import sys
from typing import Any

_CALLS = {"count": 0}


def main_handler(event: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    _CALLS["count"] += 1
    print("echo handled a request")
    return {
        "event": event,
        "context": context,
        "calls": _CALLS["count"],
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "sys_path": sys.path[:2],
        "env": {
            name: os.environ.get(name)
            for name in (
                "SECRET_TOKEN",
                "GREETING",
                "OUT_DIR",
                "SCF_FUNCTIONNAME",
                "SCF_NAMESPACE",
                "SCF_FUNCTIONVERSION",
                "TENCENTCLOUD_REGION",
                "TENCENTCLOUD_RUNENV",
                "TRIGGER_SRC",
                "FIXTURE_LEAK_CHECK",
            )
        },
    }
