"""The health probe of a token: a small port, and its HTTP adapter (a GET of the pool's
health URL with the token as bearer; any 2xx passes). Redirects are not followed, so the token
never goes to another host."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    status: int | None = None
    latency_ms: float | None = None
    error: str | None = None


class TokenProbe(Protocol):
    def check(self, url: str, secret: str) -> ProbeResult: ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class HttpTokenProbe:
    def __init__(self, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self._timeout_s = timeout_s
        self._opener = urllib.request.build_opener(_NoRedirect)

    def check(self, url: str, secret: str) -> ProbeResult:
        if not url.startswith(("http://", "https://")):
            return ProbeResult(ok=False, error="health URL is not http(s)")
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            url, headers={"Authorization": f"Bearer {secret}", "User-Agent": "token-pick"}
        )
        started = time.perf_counter()
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
        except (OSError, ValueError) as exc:
            return ProbeResult(ok=False, error=type(exc).__name__)
        latency = round((time.perf_counter() - started) * 1000, 1)
        ok = 200 <= status < 300
        return ProbeResult(ok, status, latency, None if ok else f"HTTP {status}")
