"""A small relay server for the connector's tests, following ``connector/PROTOCOL.md``: every
request's signature is verified, job lists are signed (or, on demand, not, or forged), result
chunks are checked for order and attempt and recorded.

Knobs: `result_status` answers every result post with that status (503: the cloud is down);
`conflict_jobs` answers 409 for those jobs; `sign_jobs` is ``"yes"``, ``"no"`` or
``"forged"``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hybrid.connectors.protocol import ResultChunk, decompress
from hybrid.signing import (
    WebhookVerificationError,
    new_webhook_secret,
    signed_headers,
    verify_request,
)


@dataclass
class Seen:
    method: str
    path: str
    instance: str
    spool_depth: int
    status: int = 0
    at: float = field(default_factory=time.monotonic)


@dataclass
class Received:
    job_id: str
    chunk: ResultChunk
    raw: dict[str, Any]
    wire_bytes: int
    encoding: str


class FakeRelay:
    def __init__(self, connector_id: str, secret: str) -> None:
        self.connector_id = connector_id
        self.secret = secret
        self.lock = threading.Condition()
        self.queue: list[dict[str, Any]] = []
        self.attempts: dict[str, int] = {}
        self.next_seq: dict[str, int] = {}
        self.accepted: list[Received] = []
        self.duplicates = 0
        self.seen: list[Seen] = []
        self.result_status: int | None = None
        self.conflict_jobs: set[str] = set()
        self.sign_jobs = "yes"
        self.server_time_offset_s = 0.0
        self.handed_out: list[str] = []
        self._server: ThreadingHTTPServer | None = None

    # --- test side ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add_job(
        self,
        query: dict[str, Any] | None,
        *,
        kind: str = "query",
        chunk_rows: int = 100,
        attempt: int = 1,
        first_seq: int = 0,
        conflict: bool = False,
    ) -> str:
        job_id = f"rjb_{uuid.uuid4().hex[:12]}"
        with self.lock:
            if conflict:
                self.conflict_jobs.add(job_id)
            self.attempts[job_id] = attempt
            self.next_seq[job_id] = first_seq
            self.queue.append(
                {
                    "job_id": job_id,
                    "kind": kind,
                    "attempt": attempt,
                    "first_seq": first_seq,
                    "chunk_rows": chunk_rows,
                    "query": query,
                    "lease_expires_at": (
                        datetime.now(timezone.utc) + timedelta(minutes=5)
                    ).isoformat(),
                }
            )
            self.lock.notify_all()
        return job_id

    def chunks(self, job_id: str) -> list[ResultChunk]:
        with self.lock:
            return [r.chunk for r in self.accepted if r.job_id == job_id]

    def received(self, job_id: str) -> list[Received]:
        with self.lock:
            return [r for r in self.accepted if r.job_id == job_id]

    def done(self, job_id: str) -> bool:
        return any(chunk.done for chunk in self.chunks(job_id))

    def posts(self, job_id: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.method == "POST" and f"/jobs/{job_id}/" in s.path]

    def polls(self) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.method == "GET"]

    # --- server side --------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k: v for k, v in handler.headers.items()}
        seen = Seen(
            handler.command,
            handler.path,
            handler.headers.get("X-Connector-Instance", ""),
            int(handler.headers.get("X-Spool-Depth") or -1),
        )
        with self.lock:
            self.seen.append(seen)
        try:
            verify_request(headers, handler.command, handler.path, body, [self.secret])
        except WebhookVerificationError:
            seen.status = 401
            _answer(handler, 401, {"title": "Unauthorized", "status": 401})
            return
        parts = urlsplit(handler.path)
        prefix = f"/api/v1/connectors/{self.connector_id}/jobs"
        if handler.command == "GET" and parts.path == prefix:
            wait = int(parse_qs(parts.query).get("wait", ["0"])[0])
            seen.status = 200
            self._poll(handler, min(wait, 1))
        elif handler.command == "POST" and parts.path.startswith(prefix + "/"):
            job_id = parts.path[len(prefix) + 1 :].split("/")[0]
            seen.status = self._result(handler, job_id, body)
        else:
            seen.status = 404
            _answer(handler, 404, {"title": "Not Found", "status": 404})

    def _poll(self, handler: BaseHTTPRequestHandler, wait: float) -> None:
        deadline = time.monotonic() + wait
        with self.lock:
            while not self.queue and time.monotonic() < deadline:
                self.lock.wait(max(0.0, deadline - time.monotonic()))
            jobs, self.queue = self.queue, []
            self.handed_out += [job["job_id"] for job in jobs]
        now = datetime.now(timezone.utc) + timedelta(seconds=self.server_time_offset_s)
        payload = json.dumps({"server_time": now.isoformat(), "jobs": jobs}).encode()
        headers = {"Content-Type": "application/json"}
        if self.sign_jobs != "no":
            secret = self.secret if self.sign_jobs == "yes" else new_webhook_secret()
            headers.update(
                signed_headers(secret, f"msg_{uuid.uuid4().hex}", int(time.time()), payload)
            )
        _send(handler, 200, payload, headers)

    def _result(self, handler: BaseHTTPRequestHandler, job_id: str, body: bytes) -> int:
        if self.result_status is not None:
            status = self.result_status
            _answer(handler, status, {"title": "Unavailable", "status": status})
            return status
        encoding = handler.headers.get("Content-Encoding") or "identity"
        raw = json.loads(decompress(body, encoding))
        chunk = ResultChunk.from_json(raw)
        with self.lock:
            if job_id in self.conflict_jobs or chunk.attempt != self.attempts.get(job_id):
                status, answer = 409, {"title": "Conflict", "status": 409}
            elif chunk.seq < self.next_seq[job_id]:
                self.duplicates += 1
                status, answer = 200, {"accepted": True, "duplicate": True}
            elif chunk.seq > self.next_seq[job_id]:
                status, answer = 409, {"title": "out of order", "status": 409}
            else:
                self.next_seq[job_id] += 1
                self.accepted.append(Received(job_id, chunk, raw, len(body), encoding))
                status, answer = 200, {"accepted": True, "duplicate": False}
            self.lock.notify_all()
        _answer(handler, status, answer)
        return status


def _send(
    handler: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict[str, str]
) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def _answer(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
    content_type = "application/json" if status == 200 else "application/problem+json"
    _send(handler, status, json.dumps(body).encode(), {"Content-Type": content_type})


@contextmanager
def running_relay(connector_id: str, secret: str) -> Iterator[FakeRelay]:
    relay = FakeRelay(connector_id, secret)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def date_time_string(self, timestamp: float | None = None) -> str:
            return formatdate(time.time() + relay.server_time_offset_s, usegmt=True)

        def do_GET(self) -> None:
            relay.handle(self)

        def do_POST(self) -> None:
            relay.handle(self)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            # A connector that stops mid-poll closes its socket: not an error of the test.
            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), Handler)
    relay._server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        server.shutdown()
        server.server_close()
