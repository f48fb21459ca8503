"""The cloud's client of a tunnel connector (``connector/PROTOCOL.md``): signed requests, the
NDJSON stream of masked rows, and a trailer that must vouch for every byte before it.

A page is returned only once its trailer verified: a stream cut short, altered, or ended by an
``$error`` line raises, and the caller stores nothing of it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import ssl
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hybrid.connectors.protocol import (
    ERROR_KEY,
    HEALTH_PATH,
    QUERY_PATH,
    TRAILER_KEY,
    QueryRequest,
    dumps,
    trailer_valid,
)
from hybrid.signing import WebhookVerificationError, sign_request, verify

DEFAULT_TIMEOUT_S = 30.0
_READ_BYTES = 64 * 1024


class ConnectorError(Exception):
    """Base of the tunnel client's errors; messages never hold row values or secrets."""


class ConnectorUnavailableError(ConnectorError):
    """The connector cannot be reached, or its source is down (it said 503)."""


class ConnectorQueryError(ConnectorError):
    """The connector refused or failed the query (4xx/5xx problem, or an ``$error`` line)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class ConnectorProtocolError(ConnectorError):
    """The answer is not authentic or not well formed (bad signature, no trailer)."""


@dataclass
class Page:
    rows: list[dict[str, Any]] = field(default_factory=list)
    trailer: dict[str, Any] = field(default_factory=dict)
    wire_bytes: int = 0

    @property
    def truncated(self) -> bool:
        return bool(self.trailer.get("truncated"))

    @property
    def cursor(self) -> list[Any] | None:
        cursor = self.trailer.get("cursor")
        return cursor if isinstance(cursor, list) else None

    @property
    def skipped(self) -> int:
        skipped = self.trailer.get("skipped")
        return skipped if isinstance(skipped, int) else 0


class _Inflater:
    def __init__(self, encoding: str) -> None:
        self._zstd: Any = None
        self._zlib: Any = None
        self._corrupt: tuple[type[Exception], ...] = (zlib.error,)
        if encoding == "gzip":
            self._zlib = zlib.decompressobj(wbits=31)
        elif encoding == "zstd":
            import zstandard

            self._zstd = zstandard.ZstdDecompressor().decompressobj()
            self._corrupt = (zstandard.ZstdError,)
        elif encoding not in ("", "identity"):
            raise ConnectorProtocolError(f"unsupported content encoding {encoding!r}")

    def feed(self, data: bytes) -> bytes:
        try:
            if self._zlib is not None:
                return bytes(self._zlib.decompress(data))
            if self._zstd is not None:
                return bytes(self._zstd.decompress(data))
        except self._corrupt as exc:
            raise ConnectorProtocolError(
                f"corrupt response stream ({type(exc).__name__})"
            ) from None
        return data


class TunnelClient:
    """Calls one tunnel connector at `endpoint` (``https://host:port``) with its secret."""

    def __init__(
        self,
        endpoint: str,
        secret: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        encoding: str = "zstd, gzip",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the connector endpoint must be an http(s) URL")
        self._parts = parts
        self._base = parts.path.rstrip("/")
        self._secret = secret
        self._timeout = timeout_s
        self._encoding = encoding
        self._ssl = ssl_context

    def _connection(self) -> http.client.HTTPConnection:
        host, port = self._parts.hostname or "", self._parts.port
        if self._parts.scheme == "https":
            return http.client.HTTPSConnection(
                host, port, timeout=self._timeout, context=self._ssl or ssl.create_default_context()
            )
        return http.client.HTTPConnection(host, port, timeout=self._timeout)

    def _send(
        self, method: str, path: str, body: bytes, extra: dict[str, str]
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, str]:
        target = self._base + path
        msg_id = f"msg_{uuid.uuid4().hex}"
        headers = sign_request(
            self._secret, method, target, body, msg_id=msg_id, timestamp=int(time.time())
        )
        headers.update(extra)
        connection = self._connection()
        try:
            connection.request(method, target, body=body or None, headers=headers)
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise ConnectorUnavailableError(
                f"connector unreachable ({type(exc).__name__})"
            ) from None
        return connection, response, msg_id

    def health(self) -> tuple[dict[str, Any], float]:
        """The connector's signed health report and the round trip in milliseconds."""
        started = time.perf_counter()
        connection, response, _msg_id = self._send("GET", HEALTH_PATH, b"", {})
        try:
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectorUnavailableError(
                f"connector unreachable ({type(exc).__name__})"
            ) from None
        finally:
            connection.close()
        elapsed_ms = (time.perf_counter() - started) * 1000
        self._raise_for_status(response.status, body, dict(response.getheaders()))
        try:
            verify(dict(response.getheaders()), body, [self._secret])
        except WebhookVerificationError:
            raise ConnectorProtocolError(
                "the health report is not signed by the connector"
            ) from None
        try:
            report = json.loads(body)
        except ValueError:
            raise ConnectorProtocolError("the health report is not JSON") from None
        if not isinstance(report, dict):
            raise ConnectorProtocolError("the health report is not an object")
        return report, elapsed_ms

    def query(self, request: QueryRequest) -> Page:
        """Run one page; returns it only after its trailer verified."""
        body = dumps(request.to_json())
        connection, response, msg_id = self._send(
            "POST",
            QUERY_PATH,
            body,
            {"Content-Type": "application/json", "Accept-Encoding": self._encoding},
        )
        try:
            if response.status != 200:
                payload = response.read()
                self._raise_for_status(response.status, payload, dict(response.getheaders()))
            return self._read_stream(response, msg_id)
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectorUnavailableError(
                f"the stream broke off ({type(exc).__name__})"
            ) from None
        finally:
            connection.close()

    def _read_stream(self, response: http.client.HTTPResponse, msg_id: str) -> Page:
        inflater = _Inflater((response.getheader("Content-Encoding") or "").strip().lower())
        digest = hashlib.sha256()
        page = Page()
        for line, wire in self._lines(response, inflater):
            page.wire_bytes = wire
            try:
                item = json.loads(line)
            except ValueError:
                raise ConnectorProtocolError("a line of the stream is not JSON") from None
            if not isinstance(item, dict):
                raise ConnectorProtocolError("a line of the stream is not an object")
            if TRAILER_KEY in item and len(item) == 1:
                trailer = item[TRAILER_KEY]
                if not isinstance(trailer, dict) or not trailer_valid(
                    [self._secret], msg_id, trailer, digest.hexdigest()
                ):
                    raise ConnectorProtocolError("the stream's trailer does not verify")
                page.trailer = trailer
                if trailer.get("row_count") != len(page.rows):
                    raise ConnectorProtocolError("the trailer's row count differs from the rows")
                return page
            if ERROR_KEY in item and len(item) == 1:
                error = item[ERROR_KEY] if isinstance(item[ERROR_KEY], dict) else {}
                raise ConnectorQueryError(
                    f"the query failed at the connector: {str(error.get('message', ''))[:300]}",
                    code=str(error.get("code") or "") or None,
                )
            digest.update(line)
            page.rows.append(item)
        raise ConnectorProtocolError("the stream ended without a trailer")

    @staticmethod
    def _lines(
        response: http.client.HTTPResponse, inflater: _Inflater
    ) -> Iterator[tuple[bytes, int]]:
        """Complete lines (newline included) and the wire bytes read so far."""
        pending = b""
        wire = 0
        while True:
            data = (
                response.read1(_READ_BYTES)
                if hasattr(response, "read1")
                else response.read(_READ_BYTES)
            )
            if not data:
                break
            wire += len(data)
            pending += inflater.feed(data)
            start = 0
            while True:
                end = pending.find(b"\n", start)
                if end < 0:
                    break
                yield pending[start : end + 1], wire
                start = end + 1
            pending = pending[start:]
        if pending.strip():
            yield pending, wire

    @staticmethod
    def _raise_for_status(status: int, body: bytes, headers: dict[str, str]) -> None:
        if 200 <= status < 300:
            return
        detail = ""
        code = None
        try:
            problem = json.loads(body)
            if isinstance(problem, dict):
                detail = str(problem.get("detail") or problem.get("title") or "")[:300]
                code = str(problem.get("code") or "") or None
        except ValueError:
            detail = ""
        if status in (502, 503):
            raise ConnectorUnavailableError(f"the connector answered {status}: {detail}")
        raise ConnectorQueryError(
            f"the connector answered {status}: {detail}", status=status, code=code
        )
