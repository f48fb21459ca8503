"""HTTP trigger events: SCF Function URL, CloudBase HTTP access service, legacy API Gateway."""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from enum import Enum

from hybrid.events import (
    MalformedEventError,
    _FrozenRecord,
    _object,
    _opt_id,
    _opt_str,
    _readonly,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_DROP_ASCII_WHITESPACE = str.maketrans("", "", " \t\r\n\f\v")


class HttpEventKind(Enum):
    """Which HTTP front end delivered the request."""

    FUNCTION_URL = "function_url"
    CLOUDBASE_HTTP = "cloudbase_http"
    API_GATEWAY = "api_gateway"


class HttpEvent(_FrozenRecord):
    """One HTTP request, normalised across the three front ends.

    ``headers`` has lower-cased names, repeated values joined with ``", "``; ``query`` maps each
    name to all its values in order (a bare ``?flag`` gives ``("",)``).
    """

    _field_names = (
        "kind",
        "method",
        "path",
        "headers",
        "query",
        "body",
        "source_ip",
        "request_id",
        "path_parameters",
        "stage",
    )
    __slots__ = _field_names

    kind: HttpEventKind
    method: str
    path: str
    headers: Mapping[str, str]
    query: Mapping[str, tuple[str, ...]]
    body: bytes
    source_ip: str | None
    request_id: str | None
    path_parameters: Mapping[str, str]
    stage: str | None

    def __init__(
        self,
        kind: HttpEventKind,
        method: str,
        path: str = "/",
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, tuple[str, ...]] | None = None,
        body: bytes = b"",
        source_ip: str | None = None,
        request_id: str | None = None,
        path_parameters: Mapping[str, str] | None = None,
        stage: str | None = None,
    ) -> None:
        init = object.__setattr__
        init(self, "kind", kind)
        init(self, "method", method.upper())
        init(self, "path", path)
        init(self, "headers", _readonly({k.lower(): v for k, v in (headers or {}).items()}))
        init(self, "query", _readonly({k: tuple(v) for k, v in (query or {}).items()}))
        init(self, "body", bytes(body))
        init(self, "source_ip", source_ip)
        init(self, "request_id", request_id)
        init(self, "path_parameters", _readonly(path_parameters or {}))
        init(self, "stage", stage)

    def header(self, name: str, default: str | None = None) -> str | None:
        """A request header by case-insensitive name."""
        return self.headers.get(name.lower(), default)

    def query_first(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default


def is_http_event(raw: object) -> bool:
    return isinstance(raw, Mapping) and "httpMethod" in raw


def parse_http_event(raw: object) -> HttpEvent:
    """Read any of the three HTTP event shapes; raises :class:`MalformedEventError` only."""
    if not isinstance(raw, Mapping):
        raise MalformedEventError(f"http event must be an object, got {type(raw).__name__}")
    method = _opt_str(raw.get("httpMethod"), "httpMethod")
    if not method or not method.strip():
        raise MalformedEventError("httpMethod is missing")
    context = _object(raw.get("requestContext"), "requestContext")
    kind = _kind(raw, context)
    headers = _headers(raw)
    primary, fallback = (
        ("queryStringParameters", "queryString")
        if kind is HttpEventKind.CLOUDBASE_HTTP
        else ("queryString", "queryStringParameters")
    )
    query_raw = raw.get(primary)
    if query_raw is None:
        primary, query_raw = fallback, raw.get(fallback)
    request_id = (
        _opt_id(context.get("requestId"), "requestContext.requestId")
        or headers.get("x-scf-request-id")
        or headers.get("x-api-requestid")
        or ""
    ).strip()
    source_ip = (
        _opt_str(context.get("sourceIp"), "requestContext.sourceIp")
        or headers.get("x-scf-remote-addr")
        or ""
    ).strip()
    return HttpEvent(
        kind=kind,
        method=method.strip(),
        path=_opt_str(raw.get("path"), "path") or "/",
        headers=headers,
        query=_query(query_raw, primary),
        body=_body(raw.get("body"), raw.get("isBase64Encoded")),
        source_ip=source_ip or None,
        request_id=request_id or None,
        path_parameters=_path_parameters(raw.get("pathParameters")),
        stage=_opt_str(context.get("stage"), "requestContext.stage"),
    )


def render_http_response(
    kind: HttpEventKind,
    status: int,
    headers: Mapping[str, str | list[str]],
    body: bytes,
) -> dict[str, Any]:
    """The integrated-response dict every HTTP front end accepts.

    The shape is the same for all three kinds today (API Gateway's is the strictest:
    ``isBase64Encoded`` a JSON bool, header values a string or a list of strings, a list
    meaning a repeated header); ``kind`` is taken so callers need not change if one diverges.
    The body goes out as text when it is UTF-8 with a textual content type, else as base64.
    """
    if not isinstance(kind, HttpEventKind):
        raise TypeError(f"kind must be an HttpEventKind, got {type(kind).__name__}")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"status must be an HTTP status code, got {status!r}")
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"body must be bytes, got {type(body).__name__}")
    rendered: dict[str, str | list[str]] = {}
    content_type: str | None = None
    for name, value in headers.items():
        if isinstance(value, str):
            rendered[name] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
            rendered[name] = list(value)
        else:
            raise TypeError(f"header {name!r} must be a string or a list of strings")
        if name.lower() == "content-type" and content_type is None:
            content_type = value if isinstance(value, str) else next(iter(value), None)
    data = bytes(body)
    text = _as_text(data, content_type)
    return {
        "isBase64Encoded": text is None,
        "statusCode": status,
        "headers": rendered,
        "body": text if text is not None else binascii.b2a_base64(data, newline=False).decode(),
    }


def _kind(raw: Mapping[str, Any], context: Mapping[str, Any]) -> HttpEventKind:
    if "serviceId" in context or "stage" in context:
        return HttpEventKind.API_GATEWAY
    if "envId" in context or "multiValueHeaders" in raw:
        return HttpEventKind.CLOUDBASE_HTTP
    return HttpEventKind.FUNCTION_URL


def _headers(raw: Mapping[str, Any]) -> dict[str, str]:
    """Lower-cased names; ``multiValueHeaders`` holds every value, so it wins for its names."""
    merged: dict[str, str] = {}
    for name, value in _object(raw.get("headers"), "headers").items():
        text = _header_value(value, f"headers.{name}")
        if text is None:
            continue
        key = str(name).lower()
        merged[key] = f"{merged[key]}, {text}" if key in merged else text
    multi: dict[str, str] = {}
    for name, value in _object(raw.get("multiValueHeaders"), "multiValueHeaders").items():
        text = _header_value(value, f"multiValueHeaders.{name}")
        if text is None:
            continue
        key = str(name).lower()
        multi[key] = f"{multi[key]}, {text}" if key in multi else text
    merged.update(multi)
    return merged


def _header_value(value: object, where: str) -> str | None:
    if isinstance(value, (list, tuple)):
        parts = [_scalar_text(item, where) for item in value]
        present = [part for part in parts if part is not None]
        return ", ".join(present) if present else None
    return _scalar_text(value, where)


def _scalar_text(value: object, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    raise MalformedEventError(f"{where} must be a string, a number or a list of them")


def _query(value: object, where: str) -> dict[str, tuple[str, ...]]:
    query: dict[str, tuple[str, ...]] = {}
    for name, item in _object(value, where).items():
        values = (
            tuple(_query_value(part, where) for part in item)
            if isinstance(item, list)
            else (_query_value(item, where),)
        )
        query[str(name)] = query.get(str(name), ()) + values
    return query


def _query_value(value: object, where: str) -> str:
    """``true`` (and null) is how the platform marks a key given without a value."""
    if value is True or value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise MalformedEventError(f"{where} values must be strings, lists of strings or true")


def _path_parameters(value: object) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for name, item in _object(value, "pathParameters").items():
        text = _scalar_text(item, f"pathParameters.{name}")
        if text is not None:
            parameters[str(name)] = text
    return parameters


def _is_base64(flag: object) -> bool:
    """``isBase64Encoded`` is a bool in real events, a string in one doc, often absent."""
    if flag is None:
        return False
    if isinstance(flag, bool):
        return flag
    if isinstance(flag, str) and flag.strip().lower() in ("true", "false", ""):
        return flag.strip().lower() == "true"
    raise MalformedEventError("isBase64Encoded must be a boolean or 'true'/'false'")


def _body(value: object, flag: object) -> bytes:
    encoded = _is_base64(flag)
    text = _opt_str(value, "body")
    if text is None:
        return b""
    if encoded:
        return _decode_base64(text)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates from a \ud800-style JSON escape
        raise MalformedEventError("body is not encodable as UTF-8") from exc


def _decode_base64(text: str) -> bytes:
    """Strict standard-alphabet base64; line breaks (MIME style) are allowed."""
    compact = text.translate(_DROP_ASCII_WHITESPACE)
    payload = compact.rstrip("=")
    if len(compact) - len(payload) > 2 or not _BASE64_ALPHABET.issuperset(payload):
        raise MalformedEventError("body is flagged base64 but is not valid base64")
    try:
        return binascii.a2b_base64(compact.encode("ascii"))
    except (binascii.Error, ValueError) as exc:
        raise MalformedEventError("body is flagged base64 but is not valid base64") from exc


def _as_text(data: bytes, content_type: str | None) -> str | None:
    if not data:
        return ""
    if not _is_textual(content_type):
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _is_textual(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    main, _, subtype = media.partition("/")
    if not subtype:
        return False
    return (
        main == "text"
        or subtype == "json"
        or subtype.endswith("+json")
        or subtype == "xml"
        or subtype.endswith("+xml")
        or "javascript" in subtype
        or "html" in subtype
        or "ndjson" in subtype
    )
