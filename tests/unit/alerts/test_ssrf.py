"""The SSRF guard for webhook targets: non-public addresses and schemes are refused."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hybrid.alerts.ssrf import UnsafeTargetError, check_url, pinned_connection

REFUSED = [
    "https://127.0.0.1/hook",
    "https://127.1.2.3:8443/hook",
    "https://10.0.0.5/hook",
    "https://172.16.0.1/hook",
    "https://172.31.255.254/hook",
    "https://192.168.1.1/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://100.64.0.1/hook",
    "https://100.127.255.254/hook",
    "https://224.0.0.1/hook",
    "https://0.0.0.0/hook",
    "https://[::1]/hook",
    "https://[::]/hook",
    "https://[fd00::1]/hook",
    "https://[fe80::1]/hook",
    "https://[ff02::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[::ffff:169.254.169.254]/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://localhost/hook",
    "https://localhost:9000/hook",
]


@pytest.mark.parametrize("url", REFUSED)
def test_non_public_targets_are_refused(url: str) -> None:
    with pytest.raises(UnsafeTargetError, match="non-public"):
        check_url(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://1.1.1.1/x",
        "file:///etc/passwd",
        "gopher://1.1.1.1/x",
        "javascript:alert(1)",
        "http://1.1.1.1/x",  # plain http only with allow_private
        "https://user:pass@1.1.1.1/x",
        "https://user@1.1.1.1/x",
        "https:///nohost",
        "https://1.1.1.1:99999/x",
        "https://no-such-host.invalid/x",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeTargetError):
        check_url(url, allow_private=False)


def test_public_ip_literal_is_accepted_without_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_connect(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("check_url must not connect")

    monkeypatch.setattr(socket, "create_connection", no_connect)
    assert check_url("https://1.1.1.1/x", allow_private=False) == "https://1.1.1.1/x"
    assert check_url("https://[2606:4700:4700::1111]/x", allow_private=False)


def test_allow_private_lets_loopback_and_http_through() -> None:
    assert check_url("http://127.0.0.1:8080/x", allow_private=True)
    assert check_url("http://localhost/x", allow_private=True)
    with pytest.raises(UnsafeTargetError):
        check_url("ftp://127.0.0.1/x", allow_private=True)


def test_a_mixed_dns_answer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(UnsafeTargetError, match="non-public"):
        check_url("https://rebind.example/x", allow_private=False)


def test_pinned_connection_goes_to_the_checked_address_with_the_original_host() -> None:
    seen: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen["host"] = self.headers["Host"]
            seen["path"] = self.path
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        connection, target = pinned_connection(
            f"http://localhost:{port}/hook?a=1", allow_private=True
        )
        assert target.ip in ("127.0.0.1", "::1")
        if target.ip == "::1":
            pytest.skip("localhost resolves to ::1 first here")
        connection.request("POST", target.path, body=b"{}")
        assert connection.getresponse().status == 204
        connection.close()
    finally:
        server.shutdown()
        server.server_close()
    assert seen == {"host": f"localhost:{port}", "path": "/hook?a=1"}
