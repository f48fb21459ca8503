"""A loopback stand-in for a Tencent Cloud API 3.0 endpoint that checks what the SDK sends:
the TC3-HMAC-SHA256 signature (recomputed here as the "Signature v3" page describes it), the
action, version, region and session-token headers, and the JSON body; it answers in the
documented `{"Response": {...}}` shape."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def tc3_problems(
    headers: Mapping[str, str], body: bytes, *, service: str, secret_id: str, secret_key: str
) -> list[str]:
    """What is wrong with a request's TC3-HMAC-SHA256 signature (empty when it is valid)."""
    algorithm, _, rest = headers.get("authorization", "").partition(" ")
    if algorithm != "TC3-HMAC-SHA256":
        return [f"algorithm {algorithm!r}"]
    parts = dict(item.strip().split("=", 1) for item in rest.split(","))
    key_id, date, scope_service, terminator = parts["Credential"].split("/")
    timestamp = headers.get("x-tc-timestamp", "0")
    problems = []
    if key_id != secret_id:
        problems.append("secret id")
    if scope_service != service or terminator != "tc3_request":
        problems.append("credential scope")
    if date != datetime.fromtimestamp(int(timestamp), timezone.utc).strftime("%Y-%m-%d"):
        problems.append("scope date")
    if abs(time.time() - int(timestamp)) > 300:
        problems.append("timestamp")
    signed = parts["SignedHeaders"].split(";")
    if not {"content-type", "host"} <= set(signed):
        problems.append("signed headers")
    canonical_headers = "".join(f"{name}:{headers[name].strip().lower()}\n" for name in signed)
    canonical_request = "\n".join(
        [
            "POST",
            "/",
            "",
            canonical_headers,
            parts["SignedHeaders"],
            hashlib.sha256(body).hexdigest(),
        ]
    )
    string_to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            timestamp,
            f"{date}/{service}/tc3_request",
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    signing_key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    expected = hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts["Signature"]):
        problems.append("signature")
    return problems


class FakeTencentApi:
    """One service's endpoint: verifies each request, records it, answers via `responder`."""

    def __init__(
        self,
        *,
        service: str,
        action: str,
        version: str,
        region: str,
        secret_id: str,
        secret_key: str,
        session_token: str,
        responder: Responder,
    ) -> None:
        self.service = service
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.expected_headers = {
            "x-tc-action": action,
            "x-tc-version": version,
            "x-tc-region": region,
            "x-tc-token": session_token,
            "content-type": "application/json",
        }
        self.requests: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.responder = responder
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, payload = fake.handle({k.lower(): v for k, v in self.headers.items()}, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                # Exactly this: the SDK parses errors only from `application/json`.
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        request_id = f"{self.service}-req-{len(self.requests) + 1}"
        problems = tc3_problems(
            headers,
            body,
            service=self.service,
            secret_id=self.secret_id,
            secret_key=self.secret_key,
        )
        problems += [
            f"header {name}"
            for name, want in self.expected_headers.items()
            if headers.get(name) != want
        ]
        params = json.loads(body)
        self.requests.append({"headers": headers, "params": params})
        if problems:
            self.problems += problems
            error = {"Code": "AuthFailure.SignatureFailure", "Message": ", ".join(problems)}
            return 200, {"Response": {"Error": error, "RequestId": request_id}}
        status, response = self.responder(params)
        response.setdefault("RequestId", request_id)
        return status, {"Response": response}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
