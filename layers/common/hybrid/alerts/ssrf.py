"""Server-side request forgery guard for user-configured webhook targets.

`check_url` resolves the host and refuses addresses that are not public (loopback, RFC 1918,
link-local and cloud metadata, CGNAT, multicast, unspecified, IPv6 ULA/link-local, IPv4-mapped
forms of those). `pinned_connection` then connects to the very address that was checked, sending
the original Host header and TLS server name, so a second DNS answer cannot rebind the request.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_TIMEOUT_S = 5.0

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeTargetError(ValueError):
    """The URL is malformed or points somewhere a webhook must not go."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (`ip`) and what to say (`host`, `path`)."""

    url: str
    scheme: str
    host: str
    port: int
    ip: str
    path: str


def is_public_ip(ip: _IPAddress) -> bool:
    """True for globally routable unicast addresses (IPv4-mapped IPv6 judged as IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return is_public_ip(mapped)
        if ip.is_site_local:
            return False
    return bool(
        ip.is_global
        and not ip.is_multicast
        and not ip.is_reserved
        and not ip.is_loopback
        and not ip.is_link_local
        and not ip.is_unspecified
        and not ip.is_private
    )


def resolve_target(url: str, *, allow_private: bool) -> Target:
    """Parse, resolve and check `url`; raises UnsafeTargetError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeTargetError("webhook URL is malformed") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeTargetError("webhook URL must use http or https")
    if scheme != "https" and not allow_private:
        raise UnsafeTargetError("webhook URL must use https")
    if "@" in parts.netloc or parts.username is not None:
        raise UnsafeTargetError("webhook URL must not carry credentials")
    host = parts.hostname
    if not host:
        raise UnsafeTargetError("webhook URL has no host")
    if port is None:
        port = 443 if scheme == "https" else 80
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnsafeTargetError(f"webhook host {host!r} does not resolve") from None
    addresses: list[_IPAddress] = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        addresses.append(ipaddress.ip_address(raw))
    if not addresses:
        raise UnsafeTargetError(f"webhook host {host!r} does not resolve")
    if not allow_private:
        # Every answer must be public: a mixed answer is how rebinding attacks start.
        for address in addresses:
            if not is_public_ip(address):
                raise UnsafeTargetError(
                    f"webhook host {host!r} resolves to a non-public address ({address})"
                )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(url=url, scheme=scheme, host=host, port=port, ip=str(addresses[0]), path=path)


def check_url(url: str, *, allow_private: bool) -> str:
    """Return `url` when it is a safe webhook target; raise UnsafeTargetError otherwise."""
    resolve_target(url, allow_private=allow_private)
    return url


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._pinned_ip = target.ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._pinned_ip, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._pinned_ip = target.ip
        self._tls_context = context

    def connect(self) -> None:
        sock = socket.create_connection((self._pinned_ip, self.port), self.timeout)
        # Certificate and SNI are checked against the URL's host name, not the address.
        self.sock = self._tls_context.wrap_socket(sock, server_hostname=self.host)


def pinned_connection(
    url: str,
    *,
    allow_private: bool,
    timeout: float = DEFAULT_TIMEOUT_S,
    context: ssl.SSLContext | None = None,
) -> tuple[http.client.HTTPConnection, Target]:
    """An unopened connection to the checked address of `url`, and the checked target.

    Send `target.path` as the request target; the Host header is the URL's host.
    """
    target = resolve_target(url, allow_private=allow_private)
    connection: http.client.HTTPConnection
    if target.scheme == "https":
        connection = _PinnedHTTPSConnection(
            target, timeout, context or ssl.create_default_context()
        )
    else:
        connection = _PinnedHTTPConnection(target, timeout)
    return connection, target
