"""An API Gateway (integrated response) function that echoes its event as the JSON body."""

from __future__ import annotations

import json
from typing import Any


def main_handler(event: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {
        "isBase64Encoded": False,
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(event),
    }
