"""A timer function: records each event; fails when its argument says so."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def main_handler(event: dict[str, Any], context: dict[str, Any]) -> str:
    record = {"event": event, "trigger_src": os.environ.get("TRIGGER_SRC")}
    with (Path(os.environ["OUT_DIR"]) / "ticker.jsonl").open("a") as out:
        out.write(json.dumps(record) + "\n")
    if event.get("Message") == "fail":
        raise RuntimeError("timer job failed")
    return "ok"
