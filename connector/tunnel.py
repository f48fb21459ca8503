"""The tunnel transport: an HTTP(S) server the cloud calls through the customer's tunnel
(frp, ZeroTier, a VPN). See ``connector/PROTOCOL.md``.

- ``POST /v1/query``: signed request → NDJSON rows (chunked, gzip/zstd per
  ``Accept-Encoding``), then a signed trailer, or an ``$error`` line when the query fails
  after the first row; errors before that are problem+json.
- ``GET /v1/health``: signed both ways.
- ``GET /healthz``: unsigned, for the container's HEALTHCHECK; never shows detail.

Every request's signature is checked before its body is parsed; a body larger than 1 MiB is
refused before it is read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import ssl
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import chain
from typing import Any
from urllib.parse import urlsplit

from connector import __version__
from connector.config import ConnectorConfig
from connector.service import (
    Chunk,
    QueryFailure,
    QueryRun,
    QueryService,
    failure_from,
    utc_now_text,
)
from connector.throttle import TokenBucket
from hybrid.connectors.protocol import (
    ERROR_KEY,
    HEALTH_PATH,
    NDJSON,
    QUERY_PATH,
    TRAILER_KEY,
    ProtocolError,
    QueryRequest,
    decompress,
    dumps,
    pick_encoding,
    sign_trailer,
)
from hybrid.signing import (
    DEFAULT_TOLERANCE_S,
    HEADER_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    WebhookVerificationError,
    signed_headers,
    verify_request,
)

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://hybrid-sync.dev/problems/"
HEALTHZ_PATH = "/healthz"
GZIP_LEVEL = 6
ZSTD_LEVEL = 3
ZSTD_LEVEL_LOW_BANDWIDTH = 19
ZSTD_MAX_WINDOW_LOG = 21
HANDSHAKE_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 75.0
LINGER_S = 2.0
STOP_GRACE_S = 15.0
LINGER_IDLE_S = 0.3
LINGER_BYTES = 8 * MAX_BODY_BYTES
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class ReplayCache:
    """Message ids seen within the signature window: a replayed request is refused."""

    def __init__(self, ttl_s: float = 2 * DEFAULT_TOLERANCE_S, limit: int = 100_000) -> None:
        self._ttl = ttl_s
        self._limit = limit
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_time(self, msg_id: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._seen) >= self._limit:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
            expiry = self._seen.get(msg_id)
            if expiry is not None and expiry > now:
                return False
            self._seen[msg_id] = now + self._ttl
            return True


class _Compressor:
    """A streaming compressor flushed after every write, so each chunk leaves at once."""

    def __init__(self, encoding: str, *, low_bandwidth: bool) -> None:
        self.encoding = encoding
        self._zlib: Any = None
        self._zstd: Any = None
        if encoding == "gzip":
            self._zlib = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        elif encoding == "zstd":
            import zstandard

            level = ZSTD_LEVEL_LOW_BANDWIDTH if low_bandwidth else ZSTD_LEVEL
            # Level 19's default 8 MiB window costs ~85 MB per stream; 2 MiB keeps nearly all
            # of the gain (pages are a few MB) for ~27 MB, so concurrent streams fit the budget.
            params = (
                zstandard.ZstdCompressionParameters.from_level(
                    level, window_log=ZSTD_MAX_WINDOW_LOG, hash_log=21, chain_log=22
                )
                if low_bandwidth
                else zstandard.ZstdCompressionParameters.from_level(level)
            )
            self._zstd = zstandard.ZstdCompressor(compression_params=params).compressobj()
            self._block = zstandard.COMPRESSOBJ_FLUSH_BLOCK

    def compress(self, data: bytes) -> bytes:
        if self._zlib is not None:
            return bytes(self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH))
        if self._zstd is not None:
            return bytes(self._zstd.compress(data) + self._zstd.flush(self._block))
        return data

    def finish(self) -> bytes:
        if self._zlib is not None:
            return bytes(self._zlib.flush())
        if self._zstd is not None:
            return bytes(self._zstd.flush())
        return b""


class TunnelServer(ThreadingHTTPServer):
    """The tunnel's HTTP server; `serve_forever` in a thread, `stop` to end it."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, config: ConnectorConfig, service: QueryService) -> None:
        self.config = config
        self.service = service
        self.stopping = threading.Event()
        self._active = 0
        self._active_cond = threading.Condition()
        self.replays = ReplayCache()
        self.bucket = TokenBucket(config.max_bytes_per_s if config.low_bandwidth else 0)
        self.ssl_context: ssl.SSLContext | None = None
        if config.tls_cert is not None and config.tls_key is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
            self.ssl_context = context
        if ":" in config.listen_host:
            self.address_family = socket.AF_INET6
        super().__init__((config.listen_host, config.listen_port), TunnelHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the request's thread, so a slow client cannot stall accept.
        if self.ssl_context is not None:
            request.settimeout(HANDSHAKE_TIMEOUT_S)
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                logger.info("tls handshake failed error=%s", type(exc).__name__)
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Never the default traceback on stderr: a driver's message may quote data.
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            logger.debug("connection ended error=%s", type(error).__name__)
        else:
            logger.error("request handling failed error=%s", type(error).__name__)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop accepting; streams in flight end with an ``$error`` line at their next chunk
        (waited for up to `grace_s`)."""
        self.stopping.set()
        self.shutdown()
        self.server_close()
        with self._active_cond:
            self._active_cond.wait_for(lambda: self._active == 0, timeout=grace_s)

    @contextmanager
    def streaming(self) -> Iterator[None]:
        """Counts a response stream in flight (`stop` waits for them)."""
        with self._active_cond:
            self._active += 1
        try:
            yield
        finally:
            with self._active_cond:
                self._active -= 1
                self._active_cond.notify_all()


class TunnelHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"hybrid-connector/{__version__}"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S
    server: TunnelServer

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http " + format, *args)

    # --- routing ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == HEALTHZ_PATH:
            self._healthz()
        elif path == HEALTH_PATH:
            self._health()
        else:
            self._discard_body()
            self._problem(404, "not_found", "no such endpoint")

    def do_POST(self) -> None:
        if urlsplit(self.path).path == QUERY_PATH:
            self._query()
        else:
            self._discard_body()
            self._problem(404, "not_found", "no such endpoint")

    # --- plumbing -----------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _problem(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        retry_after: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        body = {
            "type": PROBLEM_TYPE_BASE + code.replace("_", "-"),
            "title": _TITLES.get(status, "Error"),
            "status": status,
            "detail": detail,
            "code": code,
        }
        body.update(extra or {})
        headers = {"Content-Type": PROBLEM_JSON}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        self._send(status, json.dumps(body).encode(), headers)

    def _discard_body(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= MAX_BODY_BYTES:
            self.rfile.read(int(length))
        elif length or self.headers.get("Transfer-Encoding"):
            self.close_connection = True

    def _read_body(self, *, required: bool) -> bytes | None:
        """The raw body under the size cap, or None after answering the error."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._problem(411, "length_required", "send the body with a Content-Length")
            return None
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            if required:
                self.close_connection = True
                self._problem(411, "length_required", "send the body with a Content-Length")
                return None
            return b""
        if not length_text.strip().isdigit():
            self.close_connection = True
            self._problem(400, "bad_request", "bad Content-Length")
            return None
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._problem(413, "body_too_large", f"the body is limited to {MAX_BODY_BYTES} bytes")
            self._linger(length)
            return None
        return self.rfile.read(length)

    def _linger(self, length: int) -> None:
        """After refusing an unread body: stop writing, then discard a bounded part of what
        the client still sends, so it reads our answer instead of a connection reset."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_IDLE_S)
            deadline = time.monotonic() + LINGER_S
            left = min(length, LINGER_BYTES)
            while left > 0 and time.monotonic() < deadline:
                data = self.rfile.read1(min(left, 65536))  # type: ignore[attr-defined]
                if not data:
                    break
                left -= len(data)
        except OSError as exc:
            logger.debug("lingering close ended error=%s", type(exc).__name__)

    def _verified(self, body: bytes) -> str | None:
        """The request's message id once its signature verified (and it was not seen
        before); otherwise answers 401 and returns None."""
        headers = {}
        for name in (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE):
            values = set(self.headers.get_all(name) or [])
            if len(values) > 1:
                values = set()  # two different values: which one was signed is unknowable
            if values:
                headers[name] = values.pop()
        try:
            message = verify_request(
                headers, self.command, self.path, body, [self.server.config.secret]
            )
        except WebhookVerificationError as exc:
            logger.warning(
                "request refused: bad signature reason=%s path=%s",
                exc.reason,
                urlsplit(self.path).path,
            )
            self._problem(401, "unauthorized", "missing or invalid signature")
            return None
        if not self.server.replays.first_time(message.id):
            logger.warning("request refused: replayed message id")
            self._problem(401, "unauthorized", "replayed request")
            return None
        return message.id

    # --- endpoints ----------------------------------------------------------------------------

    def _healthz(self) -> None:
        self._discard_body()
        ok = self.server.service.ready and not self.server.stopping.is_set()
        body = json.dumps({"status": "ok" if ok else "unavailable"}).encode()
        self._send(200 if ok else 503, body, {"Content-Type": "application/json"})

    def _health(self) -> None:
        body = self._read_body(required=False)
        if body is None or self._verified(body) is None:
            return
        report = self.server.service.health(transport="tunnel")
        payload = dumps(report)
        headers = signed_headers(
            self.server.config.secret, f"msg_{uuid.uuid4().hex}", int(time.time()), payload
        )
        headers["Content-Type"] = "application/json"
        self._send(200, payload, headers)

    def _query(self) -> None:
        raw = self._read_body(required=True)
        if raw is None:
            return
        request_id = self._verified(raw)
        if request_id is None:
            return
        try:
            body = decompress(
                raw, self.headers.get("Content-Encoding") or "identity", max_bytes=MAX_BODY_BYTES
            )
            request = QueryRequest.from_json(json.loads(body))
        except ProtocolError as exc:
            self._problem(422, "bad_request", str(exc))
            return
        except ValueError:
            self._problem(400, "bad_request", "the body is not JSON")
            return
        service = self.server.service
        try:
            run = service.start(request, request_id=request_id)
            chunks = run.chunks(self.server.config.chunk_rows)
            first = next(chunks)
        except QueryFailure as failure:
            self._refuse(failure)
            return
        except Exception as exc:  # noqa: BLE001 - answered as a problem, its type logged
            logger.error("query failed unexpectedly error=%s", type(exc).__name__)
            self._refuse(failure_from(exc))
            return
        with self.server.streaming():
            self._stream(request_id, run, first, chunks)

    def _refuse(self, failure: QueryFailure) -> None:
        self._problem(
            failure.status,
            failure.code,
            failure.message,
            retry_after=failure.retry_after,
            extra={"sqlstate": failure.sqlstate} if failure.sqlstate else None,
        )

    def _stream(
        self, request_id: str, run: QueryRun, first: Chunk, chunks: Generator[Chunk, None, None]
    ) -> None:
        config = self.server.config
        stats = self.server.service.stats
        digests = self.server.service.digests
        encoding = pick_encoding(
            self.headers.get("Accept-Encoding"), prefer_zstd=config.low_bandwidth
        )
        compressor = _Compressor(encoding, low_bandwidth=config.low_bandwidth)
        self.send_response(200)
        self.send_header("Content-Type", NDJSON)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-store")
        if encoding != "identity":
            self.send_header("Content-Encoding", encoding)
        self.end_headers()
        digest = hashlib.sha256()
        staged = False
        completed = False
        try:
            try:
                for chunk in chain([first], chunks):
                    if self.server.stopping.is_set():
                        raise QueryFailure(503, "shutting_down", "the connector is stopping")
                    data = b"".join(dumps(row) + b"\n" for row in chunk.rows)
                    digest.update(data)
                    self._write(compressor.compress(data))
                    stats.sent(rows=len(chunk.rows), chunks=1)
                    if chunk.digests and digests is not None:
                        digests.stage(request_id, chunk.digests)
                        staged = True
            except Exception as exc:  # noqa: BLE001 - ends the stream with an $error, logged
                failure = failure_from(exc)
                if not isinstance(exc, QueryFailure):
                    logger.error("stream failed unexpectedly error=%s", type(exc).__name__)
                line = dumps({ERROR_KEY: failure.to_error()}) + b"\n"
                self._write(compressor.compress(line) + compressor.finish())
                self._end_chunks()
                return
            trailer: dict[str, Any] = run.trailer_fields()
            trailer.update(
                request_id=request_id,
                timestamp=int(time.time()),
                body_sha256=digest.hexdigest(),
            )
            trailer["signature"] = sign_trailer(config.secret, request_id, trailer)
            line = dumps({TRAILER_KEY: trailer}) + b"\n"
            self._write(compressor.compress(line) + compressor.finish())
            self._end_chunks()
            completed = True
        except OSError as exc:
            self.close_connection = True
            logger.info("client went away mid-stream error=%s", type(exc).__name__)
        finally:
            chunks.close()
            if staged and digests is not None:
                if completed:
                    digests.commit(request_id)
                else:
                    digests.discard(request_id)

    def _write(self, data: bytes) -> None:
        if not data:
            return
        self.server.bucket.take(len(data), self.server.stopping)
        self.wfile.write(b"%X\r\n%b\r\n" % (len(data), data))
        self.server.service.stats.sent(wire_bytes=len(data))

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")


def serve(config: ConnectorConfig, service: QueryService) -> TunnelServer:
    """A started server (its loop runs in a daemon thread)."""
    server = TunnelServer(config, service)
    thread = threading.Thread(target=server.serve_forever, name="tunnel", daemon=True)
    thread.start()
    logger.info(
        "tunnel listening host=%s port=%d tls=%s time=%s",
        config.listen_host,
        server.port,
        server.ssl_context is not None,
        utc_now_text(),
    )
    return server


__all__ = ["MAX_BODY_BYTES", "TunnelServer", "serve"]
