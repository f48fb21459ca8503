"""``python -m connector doctor``: one line per check, ``OK``/``WARN``/``FAIL`` and a short
text, for the customer's IT to run before (and while) the connector runs.

Checks: the configuration; the data directory; each source (reachable, latency, its
read-only self-test and warnings); the pseudonym key; for the relay the egress to the cloud
(TCP, TLS, HTTP), the signed poll (``…/jobs?wait=0``: the cloud accepts our signature and
signs its answer with our secret) and the clock skew against the cloud (its ``server_time``
and ``Date`` header: WARN above 5 s, FAIL above 120 s, signatures allow ±300 s); for the
tunnel whether the listen port can be bound and the TLS files load.

``--quick`` (the container's health check) checks only the configuration, and that the
running connector is alive: the tunnel's ``/healthz`` answers, or the relay polled recently.

Exit status: 0 when no check failed, 1 otherwise.
"""

from __future__ import annotations

import errno
import http.client
import json
import socket
import ssl
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import IO
from urllib.parse import urlsplit

from connector import __version__
from connector.config import ConfigError, ConnectorConfig, load_config
from connector.relay import parse_time
from connector.service import build_source
from connector.sources.errors import SourceError, UnsafeSourceError
from hybrid.signing import WebhookVerificationError, sign_request, verify

SKEW_WARN_S = 5.0
SKEW_FAIL_S = 120.0
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Check:
    status: str  # OK, WARN or FAIL
    name: str
    text: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.text}"


class Doctor:
    """Runs the checks, printing each line as soon as it is known."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.checks: list[Check] = []

    def add(self, status: str, name: str, text: str) -> None:
        check = Check(status, name, text)
        self.checks.append(check)
        print(check.line(), file=self.out, flush=True)

    @property
    def failed(self) -> bool:
        return any(check.status == "FAIL" for check in self.checks)


def run_doctor(
    config_path: str | None,
    *,
    quick: bool = False,
    env: Mapping[str, str] | None = None,
    out: IO[str] | None = None,
) -> int:
    doctor = Doctor(out or sys.stdout)
    try:
        config = load_config(config_path, env)
    except ConfigError as exc:
        doctor.add("FAIL", "config", str(exc))
        return 1
    doctor.add(
        "OK",
        "config",
        f"valid (connector {config.connector_id}, transport {config.transport}, "
        f"{len(config.sources)} source(s), low_bandwidth {str(config.low_bandwidth).lower()})",
    )
    if quick:
        _alive(doctor, config)
        return 1 if doctor.failed else 0
    _data_dir(doctor, config)
    _pseudonym_key(doctor, config)
    for name in config.sources:
        _source(doctor, config, name)
    if config.transport == "relay":
        _egress(doctor, config)
        _cloud(doctor, config)
    else:
        _listen(doctor, config)
    return 1 if doctor.failed else 0


# --- checks -------------------------------------------------------------------------------------


def _data_dir(doctor: Doctor, config: ConnectorConfig) -> None:
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        probe = config.data_dir / f".doctor-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        doctor.add("FAIL", "data_dir", f"{config.data_dir} is not writable ({exc.strerror})")
        return
    doctor.add("OK", "data_dir", f"{config.data_dir} is writable")


def _pseudonym_key(doctor: Doctor, config: ConnectorConfig) -> None:
    if config.pseudonym_key is not None:
        doctor.add("OK", "pseudonym_key", "configured")
    elif config.pseudonym_key_path.exists():
        doctor.add("OK", "pseudonym_key", f"kept in {config.pseudonym_key_path} (back it up)")
    else:
        doctor.add(
            "WARN",
            "pseudonym_key",
            "not configured: one will be generated in data_dir (set CONNECTOR_PSEUDONYM_KEY "
            "to keep pseudonyms stable across machines)",
        )


def _source(doctor: Doctor, config: ConnectorConfig, name: str) -> None:
    label = f"source {name}"
    try:
        source = build_source(config.sources[name])
    except ValueError as exc:
        doctor.add("FAIL", label, f"bad settings ({exc})")
        return
    try:
        try:
            latency = source.ping()
        except SourceError as exc:
            doctor.add("FAIL", label, f"unreachable ({exc})")
            return
        doctor.add("OK", label, f"reachable ({latency:.0f} ms)")
        try:
            report = source.self_test()
        except UnsafeSourceError as exc:
            for problem in exc.problems:
                doctor.add("FAIL", f"{label} self-test", f"not read-only: {problem}")
            return
        except SourceError as exc:
            doctor.add("FAIL", f"{label} self-test", f"could not run ({exc})")
            return
        doctor.add(
            "OK", f"{label} self-test", f"read-only privileges ({len(report.checks)} checks)"
        )
        for warning in report.warnings:
            doctor.add("WARN", f"{label} self-test", warning)
    finally:
        source.close()


def _egress(doctor: Doctor, config: ConnectorConfig) -> None:
    assert config.cloud_url is not None
    parts = urlsplit(config.cloud_url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    started = time.perf_counter()
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
    except OSError as exc:
        doctor.add("FAIL", "egress", f"cannot connect to {host}:{port} ({_reason(exc)})")
        return
    try:
        text = f"TCP to {host}:{port}"
        if https:
            context = ssl.create_default_context()
            try:
                with context.wrap_socket(sock, server_hostname=host) as tls:
                    text += f" + {tls.version()}"
            except (ssl.SSLError, OSError) as exc:
                doctor.add("FAIL", "egress", f"TLS to {host}:{port} failed ({_reason(exc)})")
                return
        elapsed = (time.perf_counter() - started) * 1000
        doctor.add("OK", "egress", f"{text} ({elapsed:.0f} ms)")
    finally:
        sock.close()


def _cloud(doctor: Doctor, config: ConnectorConfig) -> None:
    """A signed ``GET …/jobs?wait=0``: our signature accepted, the answer signed with our
    secret, and the clocks compared."""
    assert config.cloud_url is not None
    parts = urlsplit(config.cloud_url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    target = f"{parts.path.rstrip('/')}/api/v1/connectors/{config.connector_id}/jobs?peek=1&wait=0"
    headers = sign_request(
        config.secret,
        "GET",
        target,
        b"",
        msg_id=f"msg_{uuid.uuid4().hex}",
        timestamp=int(time.time()),
    )
    headers.update(
        {
            "X-Connector-Version": __version__,
            "X-Connector-Instance": f"doctor-{uuid.uuid4().hex[:12]}",
            "X-Spool-Depth": "0",
            "Accept": "application/json",
        }
    )
    connection: http.client.HTTPConnection
    if https:
        connection = http.client.HTTPSConnection(
            parts.hostname or "", port, timeout=15, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", port, timeout=15)
    sent = time.time()
    try:
        connection.request("GET", target, headers=headers)
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        doctor.add("FAIL", "cloud", f"no HTTP answer from {config.cloud_url} ({_reason(exc)})")
        return
    finally:
        connection.close()
    received = time.time()
    answer_headers = dict(response.getheaders())
    _date_skew(doctor, answer_headers.get("Date") or answer_headers.get("date"), sent, received)
    if response.status == 401:
        doctor.add(
            "FAIL", "cloud", "the cloud refused our signature (401): check the secret and clock"
        )
        return
    if response.status == 404:
        doctor.add("FAIL", "cloud", f"the cloud does not know connector {config.connector_id}")
        return
    if response.status != 200:
        doctor.add("FAIL", "cloud", f"HTTP reachable, but the poll answered {response.status}")
        return
    try:
        verify(answer_headers, body, [config.secret])
    except WebhookVerificationError as exc:
        doctor.add("FAIL", "cloud", f"the answer is not signed with our secret ({exc.reason})")
        return
    doctor.add("OK", "cloud", "signed poll accepted, answer signed with our secret")
    try:
        server_time = parse_time(json.loads(body).get("server_time"))
    except (ValueError, AttributeError):
        server_time = None
    if server_time is None:
        doctor.add("WARN", "clock", "the cloud sent no server_time")
        return
    _skew(doctor, "clock", server_time.timestamp(), sent, received, "server_time")


def _date_skew(doctor: Doctor, header: str | None, sent: float, received: float) -> None:
    if not header:
        return
    try:
        stamp = parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return
    # The Date header has whole seconds: allow one more.
    _skew(doctor, "clock (Date header)", stamp, sent - 1, received + 1, "HTTP Date")


def _skew(
    doctor: Doctor, name: str, remote: float, sent: float, received: float, what: str
) -> None:
    inside = sent <= remote <= received
    skew = 0.0 if inside else min(abs(remote - sent), abs(remote - received))
    text = f"{skew:.1f} s off the cloud's {what}"
    if skew > SKEW_FAIL_S:
        doctor.add("FAIL", name, text + " (signatures allow ±300 s: fix NTP)")
    elif skew > SKEW_WARN_S:
        doctor.add("WARN", name, text + " (check NTP)")
    else:
        doctor.add("OK", name, text)


def _listen(doctor: Doctor, config: ConnectorConfig) -> None:
    family = socket.AF_INET6 if ":" in config.listen_host else socket.AF_INET
    address = f"{config.listen_host}:{config.listen_port}"
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((config.listen_host, config.listen_port))
            doctor.add("OK", "listen", f"{address} can be bound")
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and _healthz(config) is not None:
                doctor.add("WARN", "listen", f"{address} is in use by a running connector")
            else:
                doctor.add("FAIL", "listen", f"{address} cannot be bound ({_reason(exc)})")
    if config.tls_cert is not None and config.tls_key is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
        except (ssl.SSLError, OSError) as exc:
            doctor.add("FAIL", "tls", f"certificate or key cannot be loaded ({_reason(exc)})")
            return
        doctor.add("OK", "tls", f"certificate {config.tls_cert.name} loaded")
    else:
        doctor.add("WARN", "tls", "no tls_cert/tls_key: the tunnel must provide encryption")


def _healthz(config: ConnectorConfig) -> int | None:
    """The local connector's ``/healthz`` status, or None when nothing answers."""
    host = config.listen_host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - reaching the local listener
        host = "127.0.0.1" if host != "::" else "::1"
    connection: http.client.HTTPConnection
    if config.tls_cert is not None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # our own listener, its name may not match
        connection = http.client.HTTPSConnection(
            host, config.listen_port, timeout=CONNECT_TIMEOUT_S, context=context
        )
    else:
        connection = http.client.HTTPConnection(host, config.listen_port, timeout=CONNECT_TIMEOUT_S)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def _alive(doctor: Doctor, config: ConnectorConfig) -> None:
    if config.transport == "tunnel":
        status = _healthz(config)
        if status == 200:
            doctor.add("OK", "alive", "/healthz answers 200")
        else:
            doctor.add("FAIL", "alive", f"/healthz answered {status or 'nothing'}")
        return
    limit = max(120.0, 4.0 * (config.poll_wait + config.idle_pause_s))
    try:
        age = time.time() - config.heartbeat_path.stat().st_mtime
    except FileNotFoundError:
        doctor.add("WARN", "alive", "no successful poll yet")
        return
    if age > limit:
        doctor.add("FAIL", "alive", f"last successful poll {age:.0f} s ago")
    else:
        doctor.add("OK", "alive", f"last successful poll {age:.0f} s ago")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def run_self_test(
    config_path: str | None, *, env: Mapping[str, str] | None = None, out: IO[str] | None = None
) -> int:
    """``python -m connector self-test``: only the sources' self-tests. Exit 78 when a
    source can write, 1 when one could not be tested, else 0."""
    doctor = Doctor(out or sys.stdout)
    try:
        config = load_config(config_path, env)
    except ConfigError as exc:
        doctor.add("FAIL", "config", str(exc))
        return 78
    unsafe = False
    for name, source_config in config.sources.items():
        label = f"source {name} self-test"
        source = build_source(source_config)
        try:
            report = source.self_test()
        except UnsafeSourceError as exc:
            unsafe = True
            for problem in exc.problems:
                doctor.add("FAIL", label, f"not read-only: {problem}")
            continue
        except SourceError as exc:
            doctor.add("FAIL", label, f"could not run ({exc})")
            continue
        finally:
            source.close()
        doctor.add("OK", label, f"read-only privileges ({len(report.checks)} checks)")
        for warning in report.warnings:
            doctor.add("WARN", label, warning)
    if unsafe:
        return 78
    return 1 if doctor.failed else 0


__all__ = ["Check", "Doctor", "run_doctor", "run_self_test"]
