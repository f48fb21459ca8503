"""Embedded PostgreSQL: the binaries of the pgserver wheel, run as our own child process.

The cluster lives in <data_dir>/postgres (initdb once, scram-sha-256, UTF8, C locale), listens on
127.0.0.1 only and logs to <data_dir>/logs/postgres.log. PostgreSQL refuses to run as root, so
when this process is root the cluster belongs to, and the server runs as, the unprivileged
``pgserver`` user (or ``nobody``); the ancestors of the data directory then get o+x so that user
can reach it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from local_emulator.stack._process import (
    LOOPBACK,
    StackError,
    is_stack_server,
    log_tail,
    open_log,
    stop_child,
    stop_orphan,
)
from local_emulator.stack.endpoints import DATABASE_NAME

logger = logging.getLogger(__name__)

SUPERUSER = "postgres"
START_TIMEOUT = 30.0
SERVER_SETTINGS = {
    "listen_addresses": LOOPBACK,
    "max_connections": "200",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
    "log_connections": "off",
    "log_timezone": "UTC",
    "timezone": "UTC",
}


def postgres_bin_dir() -> Path:
    """<pgserver package>/pginstall/bin, found without importing pgserver (it is slow)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the pgserver package is not installed")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise StackError(f"no PostgreSQL binaries in {bin_dir}")
    return bin_dir


def _server_account() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as when we are root (it refuses root), else None."""
    if os.geteuid() != 0:
        return None
    for name in ("pgserver", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise StackError("running as root and no unprivileged account (pgserver, nobody) exists")


def _make_traversable(path: Path) -> None:
    """Give 'others' search permission on every ancestor of path (only needed as root)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


class PostgresServer:
    """One PostgreSQL cluster in data_dir/postgres, served on 127.0.0.1:port."""

    def __init__(self, data_dir: Path, *, port: int, password: str) -> None:
        self.data_dir = data_dir
        self.cluster_dir = data_dir / "postgres"
        self.log_path = data_dir / "logs" / "postgres.log"
        self.port = port
        self._password = password
        self._bin = postgres_bin_dir()
        self._account = _server_account()
        self._proc: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def url(self, database: str = DATABASE_NAME) -> str:
        return f"postgresql://{SUPERUSER}:{self._password}@{LOOPBACK}:{self.port}/{database}"

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Initialise the cluster if needed, start the server and wait until it serves."""
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._account is not None:
            _make_traversable(self.data_dir)
        if not (self.cluster_dir / "PG_VERSION").is_file():
            self._initdb()
        self._clear_stale_pid_file()
        self._socket_dir = self._make_socket_dir()
        command = [
            str(self._bin / "postgres"),
            "-D",
            str(self.cluster_dir),
            "-p",
            str(self.port),
            "-k",
            str(self._socket_dir),
        ]
        for name, value in SERVER_SETTINGS.items():
            command += ["-c", f"{name}={value}"]
        log_fd = open_log(self.log_path)
        try:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._account_kwargs(),
            )
        finally:
            os.close(log_fd)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back open transactions, checkpoint, exit)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_child(proc, signal.SIGINT, timeout=20.0)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    # --- internals ---------------------------------------------------------------------------

    def _account_kwargs(self) -> dict[str, Any]:
        if self._account is None:
            return {}
        return {
            "user": self._account.pw_uid,
            "group": self._account.pw_gid,
            "extra_groups": [],
            "env": {**os.environ, "HOME": str(self.cluster_dir), "USER": self._account.pw_name},
        }

    def _make_socket_dir(self) -> Path:
        """A short directory for the Unix socket (paths are limited to ~100 bytes).

        Named after the data dir, so a run that was killed leaves no new directory behind.
        """
        digest = hashlib.sha256(str(self.cluster_dir).encode()).hexdigest()[:12]
        path = Path(tempfile.gettempdir()) / f"hpg-{digest}"
        path.mkdir(mode=0o700, exist_ok=True)
        if path.is_symlink() or path.stat().st_uid not in (os.geteuid(), self._uid()):
            path = Path(tempfile.mkdtemp(prefix="hpg-"))
        if self._account is not None:
            os.chown(path, self._account.pw_uid, self._account.pw_gid)
        return path

    def _uid(self) -> int:
        return self._account.pw_uid if self._account is not None else os.geteuid()

    def _initdb(self) -> None:
        if self.cluster_dir.exists():
            # A half-initialised cluster from an interrupted initdb: start again.
            shutil.rmtree(self.cluster_dir)
        self.cluster_dir.mkdir(mode=0o700)
        pwfile = Path(tempfile.mkstemp(prefix="hpg-pw-")[1])
        try:
            pwfile.write_text(self._password + "\n")
            if self._account is not None:
                os.chown(self.cluster_dir, self._account.pw_uid, self._account.pw_gid)
                os.chown(pwfile, self._account.pw_uid, self._account.pw_gid)
            result = subprocess.run(
                [
                    str(self._bin / "initdb"),
                    "-D",
                    str(self.cluster_dir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-instructions",
                ],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                **self._account_kwargs(),
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StackError(f"initdb failed: {(result.stderr or result.stdout).strip()[-2000:]}")
        logger.info("postgres cluster initialised dir=%s", self.cluster_dir)

    def _clear_stale_pid_file(self) -> None:
        """Deal with postmaster.pid left by a killed run (the caller holds the data dir lock)."""
        pid_file = self.cluster_dir / "postmaster.pid"
        try:
            first_line = pid_file.read_text().splitlines()[0]
            pid = int(first_line.strip())
        except (OSError, ValueError, IndexError):
            return
        if is_stack_server("postgres", pid, self.data_dir):
            logger.warning("stopping leftover postgres pid=%s", pid)
            stop_orphan(pid, signal.SIGINT, timeout=20.0)
        pid_file.unlink(missing_ok=True)

    def _wait_ready(self) -> None:
        import pg8000.dbapi
        import pg8000.native

        deadline = time.monotonic() + START_TIMEOUT
        last_error = ""
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise StackError(f"postgres exited during start:\n{log_tail(self.log_path)}")
            try:
                conn = pg8000.native.Connection(
                    SUPERUSER,
                    password=self._password,
                    host=LOOPBACK,
                    port=self.port,
                    database="postgres",
                    timeout=5,
                )
            except (OSError, pg8000.dbapi.InterfaceError, pg8000.dbapi.DatabaseError) as exc:
                last_error = type(exc).__name__
                time.sleep(0.03)
                continue
            try:
                rows = conn.run(
                    "SELECT 1 FROM pg_database WHERE datname = :name", name=DATABASE_NAME
                )
                if not rows:
                    conn.run(f'CREATE DATABASE "{DATABASE_NAME}"')
            finally:
                conn.close()
            return
        raise StackError(f"postgres not ready after {START_TIMEOUT:.0f}s ({last_error})")
