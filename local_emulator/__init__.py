"""Local emulator: runs every function of `serverless.yml` on one machine, no cloud account.

Import `local_emulator.emulator.Emulator` for the whole composition; the submodules each do one
job (descriptor, cron, worker, invoker, gateway, scheduler, queue, cos_events).
"""

from __future__ import annotations

import json
import logging
from typing import Any

LOCAL_APPID = "1250000000"
LOCAL_UIN = "100000000001"


def log_json(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log one JSON line (`{"event": ..., **fields}`); callers never pass env values or payloads."""
    if logger.isEnabledFor(level):
        logger.log(level, json.dumps({"event": event, **fields}, default=str))
