"""A queue function (TDMQ via EventBridge, and legacy CMQ): records events; fails on "fail"."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def main_handler(event: dict[str, Any], context: dict[str, Any]) -> str:
    body = event["Records"][0]["CMQ"]["msgBody"] if "Records" in event else event["data"]["msgBody"]
    with (Path(os.environ["OUT_DIR"]) / "consumer.jsonl").open("a") as out:
        out.write(json.dumps(event) + "\n")
    if body == "fail":
        raise RuntimeError("cannot handle this message")
    return "ok"
