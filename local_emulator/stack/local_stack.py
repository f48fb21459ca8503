"""LocalStack: embedded PostgreSQL, Redis and COS for one data directory.

Layout of data_dir (everything persists across restarts of the stack):

- ``secrets/``: passwords and the COS key pair, generated once, mode 0600 (dir 0700)
- ``stack.json``: ports and child pids (a new stack reuses the ports when they are free)
- ``postgres/``, ``redis/``, ``cos/``: the data of each server; ``logs/``: their logs
- ``.lock``: held while a LocalStack runs on the directory (a second one is refused)
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlsplit

from local_emulator.stack._process import (
    LOOPBACK,
    SecretStore,
    StackError,
    StateFile,
    open_log,
    pick_port,
    port_is_free,
    python_child_env,
    stop_child,
    stop_leftover_servers,
)
from local_emulator.stack._reaper import REAPING_MARKER
from local_emulator.stack.cos import BUCKET_NAME, CosServer
from local_emulator.stack.endpoints import (
    DEFAULT_BUCKET,
    DEFAULT_REGION,
    CosEndpoint,
    StackEndpoints,
)
from local_emulator.stack.postgres import PostgresServer
from local_emulator.stack.redis import RedisServer

logger = logging.getLogger(__name__)

POSTGRES = "postgres"
REDIS = "redis"
COS = "cos"
ALL_SERVICES = (POSTGRES, REDIS, COS)
LOCK_WAIT_WHILE_REAPING = 30.0


class _Server(Protocol):
    port: int

    @property
    def pid(self) -> int | None: ...

    @property
    def running(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class LocalStack:
    """Embedded PostgreSQL, Redis and COS servers on 127.0.0.1, data under data_dir.

    ``services`` limits which servers this stack runs (the others being external, see
    :func:`resolve_stack`). Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        cos_notify_url: str | None = None,
        region: str = DEFAULT_REGION,
        bucket: str = DEFAULT_BUCKET,
        services: Iterable[str] = ALL_SERVICES,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.cos_notify_url = cos_notify_url
        self.region = region
        self.bucket = bucket
        self.services = tuple(dict.fromkeys(services))
        unknown = set(self.services) - set(ALL_SERVICES)
        if unknown:
            raise ValueError(f"unknown services: {sorted(unknown)}")
        if not BUCKET_NAME.match(bucket):
            raise ValueError(f"bucket must be a full COS name <name>-<appid>, got {bucket!r}")
        if cos_notify_url and urlsplit(cos_notify_url).scheme not in ("http", "https"):
            raise ValueError("cos_notify_url must be an http(s) URL")
        self._secrets = SecretStore(self.data_dir)
        self._state = StateFile(self.data_dir)
        self._servers: dict[str, _Server] = {}
        self._lock_fd: int | None = None
        self._reaper: subprocess.Popen[bytes] | None = None
        self._mutex = threading.RLock()
        self._state_lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> StackEndpoints:
        """Start all three servers (in parallel), wait until they serve, return the endpoints."""
        if set(self.services) != set(ALL_SERVICES):
            raise StackError("start() needs all services; use start_services() for a subset")
        self.start_services()
        return self.endpoints

    def start_services(self) -> None:
        """Start the services of this stack (in parallel) and wait until all serve."""
        with self._mutex:
            if self._servers:
                return
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._acquire_lock()
            try:
                stopped = stop_leftover_servers(self.data_dir)
                if stopped:
                    logger.warning("stopped servers left by a killed run: %s", stopped)
                self._start_reaper()
                self._servers = self._build_servers()
                with ThreadPoolExecutor(max_workers=len(self._servers)) as pool:
                    futures = [pool.submit(self._start_server, name) for name in self._servers]
                    errors = [future.exception() for future in futures]
                first_error = next((error for error in errors if error is not None), None)
                if first_error is not None:
                    raise first_error
            except BaseException:
                self._stop_all()
                self._stop_reaper()
                self._release_lock()
                raise
            atexit.register(self.stop)
            logger.info("local stack started dir=%s services=%s", self.data_dir, self.services)

    def stop(self) -> None:
        """Stop every server (COS, Redis, then PostgreSQL) and release the data dir."""
        with self._mutex:
            atexit.unregister(self.stop)
            self._stop_all()
            self._stop_reaper()
            self._release_lock()

    def __enter__(self) -> LocalStack:
        self.start_services()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- single services (outage tests) ------------------------------------------------------

    def stop_postgres(self) -> None:
        """Fast shutdown of PostgreSQL; clients see their connections drop."""
        self._server(POSTGRES).stop()

    def start_postgres(self) -> None:
        """Start PostgreSQL again on the same port (StackError if the port was taken)."""
        self._server(POSTGRES).start()
        self._record(POSTGRES)

    def restart_postgres(self) -> None:
        self.stop_postgres()
        self.start_postgres()

    def stop_redis(self) -> None:
        self._server(REDIS).stop()

    def start_redis(self) -> None:
        """Start Redis again on the same port (StackError if the port was taken)."""
        self._server(REDIS).start()
        self._record(REDIS)

    def restart_redis(self) -> None:
        self.stop_redis()
        self.start_redis()

    def stop_cos(self) -> None:
        self._server(COS).stop()

    def start_cos(self) -> None:
        """Start the COS emulator again on the same port; stored objects are reloaded."""
        self._server(COS).start()
        self._record(COS)

    # --- endpoints ---------------------------------------------------------------------------

    @property
    def endpoints(self) -> StackEndpoints:
        """Endpoints of a started stack that runs all three services."""
        return StackEndpoints(
            database_url=self.database_url, redis_url=self.redis_url, cos=self.cos_endpoint
        )

    @property
    def database_url(self) -> str:
        server = self._server(POSTGRES)
        assert isinstance(server, PostgresServer)
        return server.url()

    @property
    def redis_url(self) -> str:
        server = self._server(REDIS)
        assert isinstance(server, RedisServer)
        return server.url()

    @property
    def cos_endpoint(self) -> CosEndpoint:
        server = self._server(COS)
        return CosEndpoint(
            scheme="http",
            host=LOOPBACK,
            port=server.port,
            region=self.region,
            bucket=self.bucket,
            secret_id=self._secrets.get("cos_secret_id", _new_secret_id),
            secret_key=self._secrets.get("cos_secret_key"),
        )

    @property
    def pids(self) -> dict[str, int | None]:
        """The pid of each server process (None while stopped)."""
        return {name: server.pid for name, server in self._servers.items()}

    @property
    def ports(self) -> dict[str, int]:
        return {name: server.port for name, server in self._servers.items()}

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    # --- internals ---------------------------------------------------------------------------

    def _server(self, name: str) -> _Server:
        try:
            return self._servers[name]
        except KeyError:
            state = "not part of this stack" if name not in self.services else "not started"
            raise StackError(f"{name} is {state}") from None

    def _build_servers(self) -> dict[str, _Server]:
        state = self._state.read()

        def port_for(name: str) -> int:
            preferred = (state.get(name) or {}).get("port")
            return pick_port(int(preferred) if preferred else None)

        servers: dict[str, _Server] = {}
        if POSTGRES in self.services:
            servers[POSTGRES] = PostgresServer(
                self.data_dir, port=port_for(POSTGRES), password=self._secrets.get("pg_password")
            )
        if REDIS in self.services:
            servers[REDIS] = RedisServer(
                self.data_dir, port=port_for(REDIS), password=self._secrets.get("redis_password")
            )
        if COS in self.services:
            self._secrets.get("cos_secret_key")
            servers[COS] = CosServer(
                self.data_dir,
                port=port_for(COS),
                secret_id=self._secrets.get("cos_secret_id", _new_secret_id),
                secret_key_file=self._secrets.path("cos_secret_key"),
                region=self.region,
                bucket=self.bucket,
                notify_url=self.cos_notify_url,
            )
        return servers

    def _start_reaper(self) -> None:
        """A watchdog that stops the servers if this process dies without calling stop()."""
        log_fd = open_log(self.log_dir / "reaper.log")
        try:
            self._reaper = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "local_emulator.stack._reaper",
                    "--parent-pid",
                    str(os.getpid()),
                    "--data-dir",
                    str(self.data_dir),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_fd,
                env=python_child_env(),
                start_new_session=True,
            )
        finally:
            os.close(log_fd)

    def _stop_reaper(self) -> None:
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            stop_child(reaper, signal.SIGTERM, timeout=5.0)

    def _start_server(self, name: str) -> None:
        server = self._servers[name]
        try:
            server.start()
        except StackError:
            # The port may have been taken between the check and the bind: one more try.
            if port_is_free(server.port):
                raise
            old_port = server.port
            server.port = pick_port(None)
            logger.warning("retrying %s on a new port old=%s new=%s", name, old_port, server.port)
            server.start()
        self._record(name)

    def _record(self, name: str) -> None:
        server = self._servers[name]
        with self._state_lock:
            self._state.update(name, port=server.port, pid=server.pid)

    def _stop_all(self) -> None:
        for name in (COS, REDIS, POSTGRES):
            server = self._servers.get(name)
            if server is None:
                continue
            try:
                server.stop()
            except (StackError, OSError) as exc:
                logger.warning("stopping %s failed error=%s", name, exc)
        self._servers = {}

    def _acquire_lock(self) -> None:
        if self._lock_fd is not None:
            return
        fd = os.open(self.data_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + LOCK_WAIT_WHILE_REAPING
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # A reaper cleaning up after a killed owner holds the lock for a moment.
                if (self.data_dir / REAPING_MARKER).exists() and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                os.close(fd)
                raise StackError(f"another LocalStack is running on {self.data_dir}") from None
        self._lock_fd = fd

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _new_secret_id() -> str:
    return "AKID" + secrets.token_hex(16)


def resolve_stack(
    data_dir: Path,
    environ: Mapping[str, str],
    *,
    cos_notify_url: str | None = None,
) -> tuple[StackEndpoints, LocalStack | None]:
    """Endpoints for the functions, starting embedded servers only for what environ lacks.

    DATABASE_URL, REDIS_URL and COS_ENDPOINT_URL (with COS_SECRET_ID, COS_SECRET_KEY and
    optionally COS_REGION, COS_BUCKET) each select an external server. COS_REGION / COS_BUCKET
    without COS_ENDPOINT_URL configure the embedded COS. The returned LocalStack (None when
    nothing was started) must be stopped by the caller.
    """
    external_cos = CosEndpoint.from_env(environ) if environ.get("COS_ENDPOINT_URL") else None
    services = [
        name
        for name, external in (
            (POSTGRES, environ.get("DATABASE_URL")),
            (REDIS, environ.get("REDIS_URL")),
            (COS, external_cos),
        )
        if not external
    ]
    stack: LocalStack | None = None
    if services:
        stack = LocalStack(
            data_dir,
            cos_notify_url=cos_notify_url,
            region=environ.get("COS_REGION") or DEFAULT_REGION,
            bucket=environ.get("COS_BUCKET") or DEFAULT_BUCKET,
            services=services,
        )
        stack.start_services()
    try:
        endpoints = StackEndpoints(
            database_url=environ.get("DATABASE_URL") or _require(stack).database_url,
            redis_url=environ.get("REDIS_URL") or _require(stack).redis_url,
            cos=external_cos or _require(stack).cos_endpoint,
        )
    except BaseException:
        if stack is not None:
            stack.stop()
        raise
    return endpoints, stack


def _require(stack: LocalStack | None) -> LocalStack:
    if stack is None:
        raise StackError("no embedded stack was started")
    return stack


def describe(endpoints: StackEndpoints, stack: LocalStack | None) -> dict[str, Any]:
    """What ``python -m local_emulator.stack`` prints: endpoints without secrets, pids, dirs."""
    return {
        "endpoints": endpoints.describe(),
        "data_dir": str(stack.data_dir) if stack else None,
        "pids": stack.pids if stack else {},
        "ports": stack.ports if stack else {},
    }
