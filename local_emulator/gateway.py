"""The HTTP gateway: requests become Function URL (or legacy API Gateway) events, results HTTP.

Routing follows `serverless.yml`: the longest `paths` prefix of an `http` trigger, or an `apigw`
API path template plus method. Internal endpoints live under `/_emulator/`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from werkzeug.datastructures import Headers
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from local_emulator import log_json
from local_emulator.descriptor import ApigwTrigger, HttpTrigger, ProjectSpec
from local_emulator.invoker import InvocationResult, Invoker

MAX_BODY = 6 * 1024 * 1024
_DRAIN_LIMIT = 64 * 1024 * 1024
_INVALID_INTEGRATED = {
    "errno": 403,
    "error": "Invalid scf response format. please check your scf response format.",
}

_log = logging.getLogger("local_emulator.gateway")

CosNotifyHandler = Callable[[dict[str, Any]], list[str]]


# --- events ---------------------------------------------------------------------------------------


def parse_query(raw: str) -> dict[str, Any]:
    """SCF's `queryString`: repeated keys become a list, a bare key (`?flag`) becomes `true`."""
    query: dict[str, Any] = {}
    for part in raw.split("&"):
        if not part:
            continue
        if "=" in part:
            key, _, value = part.partition("=")
            parsed: Any = unquote_plus(value)
        else:
            key, parsed = part, True
        key = unquote_plus(key)
        if key not in query:
            query[key] = parsed
        elif isinstance(query[key], list):
            query[key].append(parsed)
        else:
            query[key] = [query[key], parsed]
    return query


def encode_body(body: bytes) -> tuple[str, bool]:
    """UTF-8 text as is; anything else base64 with `isBase64Encoded` true."""
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def lower_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    return merged


def function_url_event(
    *,
    method: str,
    path: str,
    query_string: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    source_ip: str,
    request_id: str,
) -> dict[str, Any]:
    """The Function URL event, shaped like the real 2025 capture (PLATFORM-NOTES §2.2)."""
    text, is_base64 = encode_body(body)
    event_headers = lower_headers(headers)
    event_headers["x-scf-request-id"] = request_id
    event_headers["x-scf-remote-addr"] = source_ip
    return {
        "body": text,
        "headers": event_headers,
        "httpMethod": method.upper(),
        "path": path,
        "queryString": parse_query(query_string),
        "headerParameters": {},
        "isBase64Encoded": is_base64,
        "pathParameters": {},
        "queryStringParameters": {},
        "requestContext": {"sourceIp": source_ip},
    }


def api_gateway_event(
    *,
    trigger: ApigwTrigger,
    path_parameters: dict[str, str],
    method: str,
    path: str,
    query_string: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    source_ip: str,
    request_id: str,
) -> dict[str, Any]:
    """The legacy API Gateway (integrated request) event (PLATFORM-NOTES §2.1)."""
    text, is_base64 = encode_body(body)
    query = parse_query(query_string)
    event_headers = lower_headers(headers)
    event_headers.setdefault("x-api-requestid", request_id)
    return {
        "requestContext": {
            "serviceId": "service-local",
            "path": trigger.path,
            "httpMethod": trigger.method,
            "requestId": request_id,
            "identity": {},
            "sourceIp": source_ip,
            "stage": "release",
        },
        "headers": event_headers,
        "body": text,
        "isBase64Encoded": is_base64,
        "pathParameters": path_parameters,
        "queryStringParameters": {k: query[k] for k in trigger.query_params if k in query},
        "headerParameters": {},
        "stageVariables": {"stage": "release"},
        "path": path,
        "queryString": query,
        "httpMethod": method.upper(),
    }


# --- routing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    trigger: HttpTrigger | ApigwTrigger
    path_parameters: dict[str, str] = field(default_factory=dict)

    @property
    def function(self) -> str:
        return self.trigger.function


def _template_pattern(template: str) -> tuple[re.Pattern[str], list[str]]:
    names: list[str] = []
    pattern = ""
    for literal, name in re.findall(r"([^{]*)(?:\{([^}]*)\})?", template):
        pattern += re.escape(literal)
        if name:
            greedy = name.endswith("+")
            names.append(name.rstrip("+"))
            pattern += "(.+)" if greedy else "([^/]+)"
    return re.compile(f"^{pattern}/?$"), names


class Router:
    """Maps (method, path) to a trigger: API templates first, then the longest http prefix."""

    def __init__(self, project: ProjectSpec) -> None:
        self._prefixes = sorted(
            ((prefix, t) for t in project.triggers("http") for prefix in t.paths),
            key=lambda item: len(item[0]),
            reverse=True,
        )
        apis = [(t, *_template_pattern(t.path)) for t in project.triggers("apigw")]
        self._apis = sorted(apis, key=lambda item: len(item[2]))  # literal templates win

    def match(self, method: str, path: str) -> Route | None:
        for trigger, pattern, names in self._apis:
            found = pattern.match(path)
            if found and trigger.method in ("ANY", method.upper()):
                return Route(trigger, dict(zip(names, found.groups(), strict=True)))
        for prefix, trigger in self._prefixes:
            if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
                return Route(trigger)
        return None

    def describe(self, function_key: str) -> list[str]:
        lines = [f"{p}/*" for p, t in reversed(self._prefixes) if t.function == function_key]
        lines += [
            f"{t.method} {t.path} (apigw)" for t, _, _ in self._apis if t.function == function_key
        ]
        return lines


# --- results --------------------------------------------------------------------------------------


def _json_response(status: int, body: Any, headers: Headers | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def error_response(result: InvocationResult) -> Response:
    """502 (504 on a time limit, 413 on an oversized event) with SCF's error minus the trace."""
    error = {k: v for k, v in (result.error or {}).items() if k != "stackTrace"}
    status = {433: 504, 406: 413}.get(result.status_code, 502)
    return _json_response(status, error)


def _integrated(payload: dict[str, Any]) -> Response | None:
    status = payload.get("statusCode")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        return None
    headers = Headers()
    raw_headers = payload.get("headers") or {}
    if not isinstance(raw_headers, dict):
        return None
    for name, value in raw_headers.items():
        for item in value if isinstance(value, list) else [value]:
            headers.add(str(name), str(item))
    body = payload.get("body")
    if body is None:
        data = b""
    elif isinstance(body, str):
        data = body.encode("utf-8")
    else:
        data = json.dumps(body).encode("utf-8")
    if payload.get("isBase64Encoded") in (True, "true", "True"):
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return None
    return Response(data, status=status, headers=headers)


def result_response(payload: Any, *, api_gateway: ApigwTrigger | None = None) -> Response:
    """Turn a handler's return value into HTTP, by the Function URL (or API Gateway) rules."""
    if api_gateway is not None and api_gateway.integrated_response:
        converted = _integrated(payload) if isinstance(payload, dict) else None
        return converted or _json_response(502, _INVALID_INTEGRATED)
    if isinstance(payload, dict) and "statusCode" in payload:
        return _integrated(payload) or _json_response(502, _INVALID_INTEGRATED)
    if isinstance(payload, str):
        return Response(payload, status=200, content_type="text/plain; charset=utf-8")
    return _json_response(200, payload)


# --- the WSGI application -------------------------------------------------------------------------


class GatewayApp:
    """WSGI application: internal endpoints, then routing to functions."""

    def __init__(
        self,
        project: ProjectSpec,
        invoker: Invoker,
        *,
        on_cos_event: CosNotifyHandler | None = None,
    ) -> None:
        self.project = project
        self.router = Router(project)
        self._invoker = invoker
        self._on_cos_event = on_cos_event

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        started = time.monotonic()
        function = None
        if request.path.startswith("/_emulator/"):
            response = self._internal(request)
        else:
            route = self.router.match(request.method, request.path)
            if route is None:
                response = _json_response(
                    404, {"error": "no function serves this path", "path": request.path}
                )
            else:
                function = route.function
                response = self._invoke(request, route)
        log_json(
            _log,
            logging.INFO,
            "http request",
            method=request.method,
            path=request.path,
            status=response.status_code,
            function=function,
            duration_ms=round((time.monotonic() - started) * 1000, 3),
        )
        return response(environ, start_response)

    def _read_body(self, request: Request) -> bytes | None:
        """The body, or None when it is over 6 MB (the rest is drained so the client sees 413)."""
        if request.content_length is not None and request.content_length > _DRAIN_LIMIT:
            return None
        body = request.stream.read(MAX_BODY + 1)
        if len(body) <= MAX_BODY:
            return body
        drained = len(body)
        while drained < _DRAIN_LIMIT:
            chunk = request.stream.read(1 << 20)
            if not chunk:
                break
            drained += len(chunk)
        return None

    def _invoke(self, request: Request, route: Route) -> Response:
        body = self._read_body(request)
        if body is None:
            return _json_response(
                413,
                {"errorCode": -1, "errorMessage": "request body over 6 MB", "statusCode": 406},
            )
        request_id = str(uuid.uuid4())
        common: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query_string": request.query_string.decode("latin-1"),
            "headers": list(request.headers.items()),
            "body": body,
            "source_ip": request.remote_addr or "127.0.0.1",
            "request_id": request_id,
        }
        api_gateway = route.trigger if isinstance(route.trigger, ApigwTrigger) else None
        if api_gateway is not None:
            event = api_gateway_event(
                trigger=api_gateway, path_parameters=route.path_parameters, **common
            )
            trigger_kind = "apigw"
        else:
            event = function_url_event(**common)
            trigger_kind = "http"
        result = self._invoker.invoke(
            route.function, event, trigger=trigger_kind, request_id=request_id
        )
        response = (
            result_response(result.payload, api_gateway=api_gateway)
            if result.ok
            else error_response(result)
        )
        response.headers["x-scf-request-id"] = request_id
        return response

    def _internal(self, request: Request) -> Response:
        if request.path == "/_emulator/health" and request.method == "GET":
            names = sorted(spec.name for spec in self.project.functions.values())
            return _json_response(200, {"status": "ok", "functions": names})
        if request.path == "/_emulator/cos-events" and request.method == "POST":
            if self._on_cos_event is None:
                return _json_response(503, {"error": "COS events are not wired"})
            try:
                notification = json.loads(request.get_data())
            except ValueError:
                return _json_response(400, {"error": "body must be JSON"})
            if not isinstance(notification, dict):
                return _json_response(400, {"error": "body must be a JSON object"})
            return _json_response(202, {"functions": self._on_cos_event(notification)})
        return _json_response(404, {"error": "unknown emulator endpoint", "path": request.path})


# --- the server -----------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's handler without its access log (the app logs JSON lines itself)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None

    def log(self, type: str, message: str, *args: Any) -> None:
        if type == "error":
            log_json(_log, logging.WARNING, "http server error", message=message % args)


class Gateway:
    """A threaded werkzeug server on loopback. The port is bound at construction (0 = free port),
    so its URL is known before the app exists; requests wait in the backlog until `start`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app: Callable[..., Iterable[bytes]] | None = None
        self._server: BaseWSGIServer = make_server(
            host, port, self._dispatch, threaded=True, request_handler=_QuietHandler
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.server_port}"

    def _dispatch(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if self._app is None:
            response = _json_response(503, {"error": "the emulator is starting"})
            return response(environ, start_response)
        return self._app(environ, start_response)

    def start(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="gateway",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
