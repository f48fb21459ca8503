"""An in-process WSGI front for the functions: each request becomes a Function URL event for
the function whose `paths` (serverless.yml) match, as the emulator's gateway does, without
worker processes. Lets HTTP fuzzers (schemathesis) drive the real handlers."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import yaml

from tests.support.http import context, function_url_event

ROOT = Path(__file__).resolve().parents[2]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _routes() -> list[tuple[str, str]]:
    """(path prefix, function folder), longest prefix first."""
    project = yaml.safe_load((ROOT / "serverless.yml").read_text())
    found = []
    for trigger in project["inputs"]["triggers"]:
        if trigger["type"] == "http":
            found.extend((p, trigger["function"]) for p in trigger["parameters"]["paths"])
    return sorted(found, key=lambda item: -len(item[0]))


class FunctionsApp:
    def __init__(self) -> None:
        self.routes = _routes()
        self.handlers: dict[str, Any] = {}

    def _handler(self, folder: str) -> Any:
        if folder not in self.handlers:
            spec = importlib.util.spec_from_file_location(
                f"wsgi_{folder}_index", ROOT / "functions" / folder / "index.py"
            )
            assert spec
            assert spec.loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self.handlers[folder] = module
        return self.handlers[folder]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/openapi.yaml":
            start_response("200 OK", [("Content-Type", "application/yaml")])
            return [(ROOT / "openapi.yaml").read_bytes()]
        folder = next((f for prefix, f in self.routes if path.startswith(prefix)), None)
        if folder is None:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "no function serves this path"}']
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").lower(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        query: dict[str, str | list[str]] = {}
        for name, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
            previous = query.get(name)
            if previous is None:
                query[name] = value
            else:
                query[name] = [*(previous if isinstance(previous, list) else [previous]), value]
        event = function_url_event(
            environ["REQUEST_METHOD"], path, raw_body=body, headers=headers, query=query
        )
        result = self._handler(folder).main_handler(event, context(folder.replace("_", "-")))
        import base64

        raw = result.get("body", "")
        data = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
        response_headers = []
        for name, value in result.get("headers", {}).items():
            values = value if isinstance(value, list) else [value]
            response_headers.extend((name, str(v)) for v in values)
        start_response(f"{result['statusCode']} STATUS", response_headers)
        return [data]
