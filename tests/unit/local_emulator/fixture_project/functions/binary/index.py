"""Answers in each response form the gateway must convert, chosen by the request path."""

from __future__ import annotations

import base64
from typing import Any


def main_handler(event: dict[str, Any], context: dict[str, Any]) -> Any:
    path = event.get("path", "")
    if path.endswith("/text"):
        return "plain words"
    if path.endswith("/list"):
        return [1, 2, 3]
    if path.endswith("/dict"):
        return {"hello": "world"}
    return {
        "statusCode": 201,
        "headers": {"Content-Type": "image/png", "X-Multi": ["one", "two"]},
        "isBase64Encoded": True,
        "body": base64.b64encode(bytes(range(256))).decode(),
    }
