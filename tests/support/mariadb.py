"""A throwaway MariaDB server for tests: a private data dir, 127.0.0.1 only, our child process.

The binaries come from Debian's mariadb-server-core and mariadb-client-core, which
``infra/scripts/install-mariadb.sh`` installs (``make test`` runs it). ``MariaDBServer`` runs
``mariadb-install-db`` into ``<data_dir>/data``, starts ``mariadbd`` on a free loopback port with
``--no-defaults`` (nothing from /etc/mysql is read), gives every root account a random password,
drops the others, creates one database, and stops the server again (SIGTERM: a clean shutdown,
then SIGKILL if it hangs). On Linux the server also gets SIGTERM when the process that started it
dies (``PR_SET_PDEATHSIG``), so a killed pytest leaves no server behind.

As root, mariadbd refuses to start without ``--user=root``: the data dir lives in pytest's
private temporary directory (mode 0700, so another user could not reach it) and the server
listens on 127.0.0.1 only, with a random root password.

A session fixture for ``tests/conftest.py``::

    @pytest.fixture(scope="session")
    def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
        from tests.support.mariadb import start_for_tests

        server = start_for_tests(tmp_path_factory)
        try:
            yield server
        finally:
            server.stop()
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pymysql

from local_emulator.stack._process import free_port

if TYPE_CHECKING:
    import pytest

LOOPBACK = "127.0.0.1"
INSTALL_HINT = "run `bash infra/scripts/install-mariadb.sh` (as root) to install it"
# Where Debian and most distributions put mariadbd (often not on a non-root PATH).
EXTRA_BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# Unix socket paths are limited to 108 bytes (sun_path), the terminating NUL included.
MAX_SOCKET_PATH = 100
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
INSTALL_DB_TIMEOUT = 120.0
BIND_ATTEMPTS = 3
ROOT_HOSTS = ("localhost", LOOPBACK, "::1")
PR_SET_PDEATHSIG = 1


class MariaDBError(RuntimeError):
    """The test MariaDB server could not be initialised, started or stopped."""


class MariaDBNotInstalled(MariaDBError):
    """mariadbd or mariadb-install-db is not on this machine."""


@dataclass(frozen=True)
class MariaDBBinaries:
    server: Path
    install_db: Path


def _which(*names: str) -> Path | None:
    search = os.pathsep.join([os.environ.get("PATH", ""), *EXTRA_BIN_DIRS])
    for name in names:
        found = shutil.which(name, path=search)
        if found:
            return Path(found)
    return None


def find_binaries() -> MariaDBBinaries:
    """The server and data-dir initialiser, or MariaDBNotInstalled naming the install script."""
    server = _which("mariadbd", "mysqld")
    install_db = _which("mariadb-install-db", "mysql_install_db")
    missing = [
        name
        for name, path in (("mariadbd", server), ("mariadb-install-db", install_db))
        if path is None
    ]
    if server is None or install_db is None:
        raise MariaDBNotInstalled(
            f"MariaDB server not found ({', '.join(missing)} missing): {INSTALL_HINT}"
        )
    return MariaDBBinaries(server=server, install_db=install_db)


def pid_alive(pid: int) -> bool:
    """True when pid names a live process (a zombie awaiting its parent's wait counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the parenthesised command name; Z is a zombie, X a dead task.
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> None:
    """In the forked child: get SIGTERM when the parent dies (Linux only, best effort)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if hasattr(libc, "prctl"):
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))


def _quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class MariaDBServer:
    """One MariaDB server on 127.0.0.1:<free port>, with its files under data_dir.

    ``with MariaDBServer(tmp) as server:`` starts it; ``server.url("reader", "pw")`` is a
    ``mysql://`` URL for it. Files: ``data/`` (the data dir), ``mariadbd.err`` (the error log),
    ``install-db.log``, ``files/`` (the only directory LOAD DATA / SELECT INTO OUTFILE may use),
    ``tmp/``.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        database: str = "customer",
        root_password: str | None = None,
        extra_args: tuple[str, ...] = (),
        die_with_parent: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.datadir = self.data_dir / "data"
        self.log_path = self.data_dir / "mariadbd.err"
        self.install_log_path = self.data_dir / "install-db.log"
        self.files_dir = self.data_dir / "files"
        self.tmp_dir = self.data_dir / "tmp"
        self.pid_file = self.data_dir / "mariadbd.pid"
        self.host = LOOPBACK
        self.port = 0
        self.database = database
        self.root_password = root_password or secrets.token_urlsafe(18)
        self.extra_args = extra_args
        self.die_with_parent = die_with_parent
        self.pid: int | None = None
        self.returncode: int | None = None
        self.init_seconds: float | None = None
        self.startup_seconds: float | None = None
        self._socket_dir: Path | None = None
        self.socket_path = self._choose_socket_path()
        self._proc: subprocess.Popen[bytes] | None = None

    # --- context manager ---------------------------------------------------------------------

    def __enter__(self) -> MariaDBServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- public API --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def url(
        self,
        user: str = "root",
        password: str | None = None,
        db: str | None = None,
        *,
        scheme: str = "mysql",
    ) -> str:
        """``mysql://user:password@127.0.0.1:port/db`` (root's password and the database by
        default); user and password are percent-encoded."""
        secret = self.root_password if password is None and user == "root" else password or ""
        database = self.database if db is None else db
        return (
            f"{scheme}://{quote(user, safe='')}:{quote(secret, safe='')}"
            f"@{self.host}:{self.port}/{quote(database, safe='')}"
        )

    def connect(
        self,
        user: str = "root",
        password: str | None = None,
        db: str | None = None,
        **kwargs: Any,
    ) -> pymysql.connections.Connection[Any]:
        """A PyMySQL connection over TCP (root with its password and the database by default)."""
        secret = self.root_password if password is None and user == "root" else password or ""
        options: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": user,
            "password": secret,
            "database": self.database if db is None else db,
            "charset": "utf8mb4",
            "connect_timeout": 10,
        }
        options.update(kwargs)
        return pymysql.connect(**options)

    def start(self) -> None:
        """Initialise the data dir, start mariadbd, secure the root accounts, create the db."""
        if self._proc is not None:
            raise MariaDBError("this MariaDB server is already started")
        binaries = find_binaries()
        began = time.monotonic()
        self._initialise(binaries)
        self.init_seconds = time.monotonic() - began
        started = time.monotonic()
        for attempt in range(1, BIND_ATTEMPTS + 1):
            self.port = free_port()
            self._launch(binaries)
            try:
                self._wait_until_ready()
                break
            except MariaDBError:
                self._terminate()
                port_taken = "Bind on TCP/IP port" in log_tail(self.log_path, 40)
                if not port_taken or attempt == BIND_ATTEMPTS:
                    self._cleanup_socket_dir()
                    raise
        try:
            self._secure()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Shut the server down cleanly (SIGTERM, then SIGKILL after STOP_TIMEOUT)."""
        try:
            self._terminate()
        finally:
            self._cleanup_socket_dir()

    # --- steps -------------------------------------------------------------------------------

    def _choose_socket_path(self) -> Path:
        path = self.data_dir / "mariadbd.sock"
        if len(str(path)) <= MAX_SOCKET_PATH:
            return path
        self._socket_dir = Path(tempfile.mkdtemp(prefix="mariadb-"))
        return self._socket_dir / "mariadbd.sock"

    def _cleanup_socket_dir(self) -> None:
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def _user_args(self) -> list[str]:
        # mariadbd refuses to run as root unless told to; any other user runs as itself.
        return ["--user=root"] if os.geteuid() == 0 else []

    def _initialise(self, binaries: MariaDBBinaries) -> None:
        if self.datadir.exists() and any(self.datadir.iterdir()):
            raise MariaDBError(f"{self.datadir} is not empty: give MariaDBServer a new directory")
        for directory in (self.datadir, self.files_dir, self.tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        command = [
            str(binaries.install_db),
            "--no-defaults",
            f"--datadir={self.datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
            *self._user_args(),
        ]
        with self.install_log_path.open("wb") as log:
            try:
                result = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=INSTALL_DB_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise MariaDBError(
                    f"mariadb-install-db took more than {INSTALL_DB_TIMEOUT:.0f}s"
                ) from exc
        if result.returncode != 0:
            raise MariaDBError(
                f"mariadb-install-db failed with exit code {result.returncode}:\n"
                f"{log_tail(self.install_log_path)}"
            )

    def server_command(self, binaries: MariaDBBinaries) -> list[str]:
        """The mariadbd command line (public so a test or a report can show it)."""
        return [
            str(binaries.server),
            "--no-defaults",
            *self._user_args(),
            f"--datadir={self.datadir}",
            f"--bind-address={LOOPBACK}",
            f"--port={self.port}",
            f"--socket={self.socket_path}",
            f"--pid-file={self.pid_file}",
            f"--log-error={self.log_path}",
            f"--tmpdir={self.tmp_dir}",
            f"--secure-file-priv={self.files_dir}",
            "--skip-networking=0",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            "--default-time-zone=+00:00",
            # Test data only: trade durability for speed.
            "--innodb-buffer-pool-size=64M",
            "--innodb-flush-log-at-trx-commit=2",
            "--innodb-doublewrite=0",
            *self.extra_args,
        ]

    def _launch(self, binaries: MariaDBBinaries) -> None:
        self.log_path.unlink(missing_ok=True)
        self.socket_path.unlink(missing_ok=True)
        self._proc = subprocess.Popen(
            self.server_command(binaries),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            preexec_fn=_die_with_parent if self.die_with_parent else None,
        )
        self.pid = self._proc.pid
        self.returncode = None

    def _wait_until_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise MariaDBError(
                    f"mariadbd exited with code {self._proc.returncode} while starting:\n"
                    f"{log_tail(self.log_path)}"
                )
            if self.socket_path.exists():
                try:
                    connection = pymysql.connect(
                        unix_socket=str(self.socket_path),
                        user="root",
                        password="",
                        connect_timeout=2,
                    )
                except pymysql.err.MySQLError as exc:
                    last_error = exc
                else:
                    connection.close()
                    return
            time.sleep(0.05)
        raise MariaDBError(
            f"mariadbd did not accept connections within {START_TIMEOUT:.0f}s "
            f"(last error: {last_error}):\n{log_tail(self.log_path)}"
        )

    def _secure(self) -> None:
        """Root only on loopback, with the password; no other account; the database created."""
        connection = pymysql.connect(
            unix_socket=str(self.socket_path), user="root", password="", autocommit=True
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT User, Host FROM mysql.global_priv")
                accounts = [(str(user), str(host)) for user, host in cursor.fetchall()]
                for user, host in accounts:
                    if user == "mariadb.sys":
                        continue
                    if user == "root" and host in ROOT_HOSTS:
                        cursor.execute(
                            "ALTER USER %s@%s IDENTIFIED BY %s", (user, host, self.root_password)
                        )
                    else:
                        cursor.execute("DROP USER %s@%s", (user, host))
                cursor.execute(
                    f"CREATE DATABASE {_quote_ident(self.database)} "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
        finally:
            connection.close()
        # Prove the TCP path the tests use works with the new password.
        self.connect().close()

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        finally:
            self.returncode = proc.returncode
            self._proc = None
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()


def start_for_tests(tmp_path_factory: pytest.TempPathFactory) -> MariaDBServer:
    """A started server in a new pytest temporary dir; fails the test (not skips) when MariaDB
    is not installed. The caller stops it (see the fixture in this module's docstring)."""
    import pytest

    server = MariaDBServer(tmp_path_factory.mktemp("mariadb"))
    try:
        server.start()
    except MariaDBNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)
    return server
