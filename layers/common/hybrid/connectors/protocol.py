"""The messages of the connector protocol (``connector/PROTOCOL.md``), shared by the cloud and
the on-prem connector: standard library only (zstandard is imported when a zstd body is met).

Validation here is structural (types, bounds); what a field means is checked by its user.
Every parse error is a `ProtocolError` whose message names the field, never its value.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from hybrid.signing import decode_secret, sign

TRAILER_KEY = "$trailer"
ERROR_KEY = "$error"
RESERVED_PREFIX = "$"
NDJSON = "application/x-ndjson"
ENCODINGS = ("zstd", "gzip", "identity")
QUERY_PATH = "/v1/query"
HEALTH_PATH = "/v1/health"
MAX_PARAMS = 100
MAX_SQL_LENGTH = 100_000
# A decompressed body may not grow beyond this (a zip bomb is refused, not inflated).
MAX_DECOMPRESSED_BYTES = 256 * 1024 * 1024


class ProtocolError(ValueError):
    """A message that does not follow the protocol (the message names the field)."""


# --- values and rows --------------------------------------------------------------------------


def json_value(value: Any) -> Any:
    """`json.dumps` default for row values (see PROTOCOL.md, Rows)."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON of a message or row (non-finite floats become null)."""
    try:
        text = json.dumps(
            obj, default=json_value, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
    except ValueError:
        text = json.dumps(
            _finite(json.loads(json.dumps(obj, default=json_value, ensure_ascii=False))),
            ensure_ascii=False,
            separators=(",", ":"),
        )
    return text.encode("utf-8")


def canonical(obj: Any) -> bytes:
    """The signed form of a trailer: sorted keys, compact, UTF-8."""
    text = json.dumps(
        obj, default=json_value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return text.encode()


def to_columnar(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    return {name: [row.get(name) for row in rows] for name in columns}


def from_columnar(
    columns: Sequence[str], data: Mapping[str, Sequence[Any]], row_count: int
) -> list[dict[str, Any]]:
    """Rows back from the column-wise form; every column must hold `row_count` values."""
    if set(data) != set(columns):
        raise ProtocolError("data: its columns differ from columns")
    lists = [data[name] for name in columns]
    if any(not isinstance(values, list) or len(values) != row_count for values in lists):
        raise ProtocolError("data: each column must hold row_count values")
    if not columns:
        return [{} for _ in range(row_count)]
    return [dict(zip(columns, values, strict=True)) for values in zip(*lists, strict=True)]


# --- compression -----------------------------------------------------------------------------


def compress(data: bytes, encoding: str, *, level: int | None = None) -> bytes:
    if encoding == "identity":
        return data
    if encoding == "gzip":
        return gzip.compress(data, compresslevel=6 if level is None else level, mtime=0)
    if encoding == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3 if level is None else level).compress(data)
    raise ProtocolError(f"unsupported content encoding {encoding!r}")


def decompress(data: bytes, encoding: str, *, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """The body without its content encoding; `ProtocolError` if it is corrupt or too large."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return data
    if encoding == "zstd":
        import zstandard

        corrupt: tuple[type[Exception], ...] = (zlib.error, zstandard.ZstdError)
    else:
        corrupt = (zlib.error,)
    try:
        if encoding == "gzip":
            inflater = zlib.decompressobj(wbits=31)
            out = inflater.decompress(data, max_bytes + 1)
            if len(out) > max_bytes or inflater.unconsumed_tail:
                raise ProtocolError("body: too large once decompressed")
            if not inflater.eof:
                raise ProtocolError("body: truncated gzip stream")
            return out
        if encoding == "zstd":
            reader = zstandard.ZstdDecompressor().stream_reader(data)
            out = reader.read(max_bytes + 1)
            if len(out) > max_bytes:
                raise ProtocolError("body: too large once decompressed")
            return out
    except corrupt as exc:
        raise ProtocolError(f"body: corrupt {encoding} data ({type(exc).__name__})") from None
    raise ProtocolError(f"unsupported content encoding {encoding!r}")


def pick_encoding(accept_encoding: str | None, *, prefer_zstd: bool = False) -> str:
    """The response encoding for an `Accept-Encoding` header: zstd or gzip when offered."""
    offered = {
        part.split(";")[0].strip().lower()
        for part in (accept_encoding or "").split(",")
        if part.strip() and not part.strip().endswith(";q=0")
    }
    order = ("zstd", "gzip") if prefer_zstd or "gzip" not in offered else ("gzip", "zstd")
    for encoding in order:
        if encoding in offered:
            return encoding
    return "identity"


# --- messages --------------------------------------------------------------------------------


def _require(obj: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise ProtocolError(f"{name}: missing or of the wrong type")
    return value


def _optional(obj: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if obj.get(name) is None:
        return None
    return _require(obj, name, kind)


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(obj: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = obj.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ProtocolError(f"{name}: must be a list of column names")
    return tuple(value)


@dataclass(frozen=True)
class QueryRequest:
    """One query for the connector (PROTOCOL.md, A query)."""

    source: str
    sql: str
    params: tuple[Any, ...] = ()
    max_rows: int | None = None
    page_token: str | None = None
    cursor_columns: tuple[str, ...] = ()
    key_columns: tuple[str, ...] = ()
    masking: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, obj: Any) -> QueryRequest:
        if not isinstance(obj, Mapping):
            raise ProtocolError("query: must be an object")
        sql = _require(obj, "sql", str)
        if not sql.strip() or len(sql) > MAX_SQL_LENGTH:
            raise ProtocolError("sql: empty or too long")
        params = obj.get("params") or []
        if not isinstance(params, list) or len(params) > MAX_PARAMS:
            raise ProtocolError(f"params: must be a list of at most {MAX_PARAMS} values")
        if any(isinstance(p, dict | list) for p in params):
            raise ProtocolError("params: values must be scalars")
        max_rows = _optional(obj, "max_rows", int)
        if max_rows is not None and max_rows < 1:
            raise ProtocolError("max_rows: must be at least 1")
        masking = _optional(obj, "masking", dict)
        return cls(
            source=_require(obj, "source", str),
            sql=sql,
            params=tuple(params),
            max_rows=max_rows,
            page_token=_optional(obj, "page_token", str),
            cursor_columns=_names(obj, "cursor_columns"),
            key_columns=_names(obj, "key_columns"),
            masking=masking,
        )

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["params"] = list(self.params)
        body["cursor_columns"] = list(self.cursor_columns)
        body["key_columns"] = list(self.key_columns)
        return body


@dataclass(frozen=True)
class RelayJob:
    """A job handed to a relay connector by `GET …/jobs`."""

    job_id: str
    kind: str
    attempt: int
    first_seq: int
    chunk_rows: int
    query: QueryRequest | None
    lease_expires_at: str

    @classmethod
    def from_json(cls, obj: Any) -> RelayJob:
        if not isinstance(obj, Mapping):
            raise ProtocolError("job: must be an object")
        kind = _require(obj, "kind", str)
        if kind not in ("query", "ping"):
            raise ProtocolError("kind: must be query or ping")
        query = QueryRequest.from_json(obj["query"]) if kind == "query" else None
        return cls(
            job_id=_require(obj, "job_id", str),
            kind=kind,
            attempt=_require(obj, "attempt", int),
            first_seq=_require(obj, "first_seq", int),
            chunk_rows=_require(obj, "chunk_rows", int),
            query=query,
            lease_expires_at=_require(obj, "lease_expires_at", str),
        )

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["query"] = self.query.to_json() if self.query else None
        return body


@dataclass(frozen=True)
class ResultChunk:
    """One chunk of a relay job's result (`POST …/jobs/{job_id}/result`)."""

    seq: int
    attempt: int
    columns: tuple[str, ...] = ()
    rows: list[dict[str, Any]] = field(default_factory=list)
    row_count: int = 0
    total_rows: int = 0
    skipped: int = 0
    cursor: list[Any] | None = None
    done: bool = False
    truncated: bool = False
    next_page_token: str | None = None
    error: dict[str, str] | None = None
    health: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, obj: Any) -> ResultChunk:
        if not isinstance(obj, Mapping):
            raise ProtocolError("chunk: must be an object")
        columns = _names(obj, "columns")
        row_count = _require(obj, "row_count", int)
        if row_count < 0:
            raise ProtocolError("row_count: must not be negative")
        if obj.get("data") is not None:
            rows = from_columnar(columns, _require(obj, "data", dict), row_count)
        else:
            rows = obj.get("rows") or []
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise ProtocolError("rows: must be a list of objects")
            if len(rows) != row_count:
                raise ProtocolError("row_count: differs from the number of rows")
        error = _optional(obj, "error", dict)
        if error is not None and not all(
            isinstance(error.get(k), str) for k in ("code", "message")
        ):
            raise ProtocolError("error: must hold code and message")
        for name in ("seq", "attempt", "total_rows", "skipped"):
            if name in ("seq", "attempt") or obj.get(name) is not None:
                _require(obj, name, int)
        return cls(
            seq=obj["seq"],
            attempt=obj["attempt"],
            columns=columns,
            rows=rows,
            row_count=row_count,
            total_rows=obj.get("total_rows") or 0,
            skipped=obj.get("skipped") or 0,
            cursor=_optional(obj, "cursor", list),
            done=bool(_optional(obj, "done", bool)),
            truncated=bool(_optional(obj, "truncated", bool)),
            next_page_token=_optional(obj, "next_page_token", str),
            error=error,
            health=_optional(obj, "health", dict),
        )

    def to_json(self, *, columnar: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "seq": self.seq,
            "attempt": self.attempt,
            "columns": list(self.columns),
            "row_count": self.row_count,
            "total_rows": self.total_rows,
            "skipped": self.skipped,
            "cursor": self.cursor,
            "done": self.done,
            "truncated": self.truncated,
            "next_page_token": self.next_page_token,
            "error": self.error,
            "health": self.health,
        }
        if columnar:
            body["data"] = to_columnar(self.columns, self.rows)
        else:
            body["rows"] = self.rows
        return body


# --- the signed trailer of a tunnel stream ----------------------------------------------------


def sign_trailer(secret: str, request_id: str, trailer: Mapping[str, Any]) -> str:
    """The trailer's `signature` (over every other trailer field, see PROTOCOL.md)."""
    unsigned = {k: v for k, v in trailer.items() if k != "signature"}
    return sign(secret, request_id, int(unsigned["timestamp"]), canonical(unsigned))


def trailer_valid(
    secrets: Iterable[str], request_id: str, trailer: Mapping[str, Any], body_sha256: str
) -> bool:
    """True when the trailer is signed with one of `secrets` for this request and vouches for
    exactly the bytes received before it (their SHA-256, hex)."""
    import hmac

    offered = trailer.get("signature")
    if not isinstance(offered, str) or not isinstance(trailer.get("timestamp"), int):
        return False
    if trailer.get("request_id") != request_id:
        return False
    if not hmac.compare_digest(str(trailer.get("body_sha256", "")), body_sha256):
        return False
    valid = False
    for secret in secrets:
        try:
            decode_secret(secret)
        except ValueError:
            continue
        valid |= hmac.compare_digest(sign_trailer(secret, request_id, trailer), offered)
    return valid


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
