"""A loopback receiver for the generic webhook channel, as a Standard Webhooks consumer would be:
it verifies each signature, keeps every request, and can hold one back (to crash the sender while
its request is in flight). `notices()` dedupes by `webhook-id`, as receivers are told to."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

SECRET = "whsec_" + "aW5ib3gtc2VjcmV0LWZvci10aGUtZTJlLXRlc3QtMTIz"


class WebhookInbox:
    def __init__(self, secret: str = SECRET) -> None:
        from standardwebhooks import Webhook
        from standardwebhooks.webhooks import WebhookVerificationError

        self._verification_error = WebhookVerificationError
        self.secret = secret
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.bad_signatures = 0
        self.arrived = threading.Event()
        self._verifier = Webhook(secret)
        self._hold: threading.Event | None = None
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                inbox._receive(headers, body)
                hold, inbox._hold = inbox._hold, None
                inbox.arrived.set()
                if hold is not None:
                    hold.wait(30)
                self.send_response(204)
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/inbox"

    def channel(self, name: str) -> dict[str, Any]:
        """The body of `POST /api/v1/alerts/channels` for this inbox."""
        return {"type": "webhook", "name": name, "config": {"url": self.url, "secret": self.secret}}

    def hold_next(self) -> threading.Event:
        """The next request is recorded, then left unanswered until the returned event is set."""
        self.arrived.clear()
        self._hold = threading.Event()
        return self._hold

    def notices(self, needle: str = "") -> list[dict[str, Any]]:
        """The `data` of each distinct notification (by webhook-id) whose body holds `needle`."""
        seen: dict[str, dict[str, Any]] = {}
        for headers, body in self.requests:
            if needle in json.dumps(body, ensure_ascii=False):
                seen.setdefault(headers["webhook-id"], body["data"])
        return list(seen.values())

    def ids(self, needle: str = "") -> list[str]:
        """The webhook-id of every request (duplicates included) whose body holds `needle`."""
        return [
            h["webhook-id"]
            for h, body in self.requests
            if needle in json.dumps(body, ensure_ascii=False)
        ]

    def _receive(self, headers: dict[str, str], body: bytes) -> None:
        try:
            payload = self._verifier.verify(body, headers)
        except self._verification_error:
            self.bad_signatures += 1
            return
        self.requests.append((headers, payload))

    def close(self) -> None:
        if self._hold is not None:
            self._hold.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookInbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
