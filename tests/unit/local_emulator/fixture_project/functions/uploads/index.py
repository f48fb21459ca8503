"""A COS-triggered function: records the events it receives."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def main_handler(event: dict[str, Any], context: dict[str, Any]) -> str:
    with (Path(os.environ["OUT_DIR"]) / "uploads.jsonl").open("a") as out:
        out.write(json.dumps(event) + "\n")
    return "ok"
