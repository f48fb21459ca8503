"""Redis access: one client per URL per process (reused by warm invocations), error translation
and Lua scripts.

Timeouts are short so that a Redis outage turns into a fast `CacheUnavailableError` (callers map
it to 503 or fall back), not a function timeout. A dropped pooled connection (the server closed
an idle one between invocations) is retried once at once; timeouts are never retried.
redis-py is imported inside the functions: importing this module stays cheap for cold starts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from hybrid.log import redact_text

if TYPE_CHECKING:
    import redis

SOCKET_TIMEOUT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 1.0
HEALTH_CHECK_INTERVAL_SECONDS = 30

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


class CacheError(Exception):
    """A Redis command failed (a script error, a wrong type): a bug or bad data, not an outage."""


class CacheUnavailableError(CacheError):
    """Redis cannot be reached or did not answer in time."""


def redis_client(url: str) -> redis.Redis:
    """The process-wide client for `url` (``redis://``, ``rediss://`` or ``unix://``)."""
    client = _clients.get(url)
    if client is not None:
        return client
    import redis as redis_lib
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = redis_lib.Redis.from_url(
                url,
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                health_check_interval=HEALTH_CHECK_INTERVAL_SECONDS,
                retry=Retry(NoBackoff(), 1, supported_errors=(redis_lib.ConnectionError,)),
                decode_responses=False,
            )
            _clients[url] = client
    return client


def clear_clients() -> None:
    """Close and forget every cached client (tests; a changed URL after a settings reload)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


@contextmanager
def redis_errors() -> Iterator[None]:
    """Translate redis-py errors raised inside the block into CacheError/CacheUnavailableError."""
    from redis import exceptions

    try:
        yield
    except (exceptions.ConnectionError, exceptions.TimeoutError) as exc:
        raise CacheUnavailableError(_describe("redis unavailable", exc)) from exc
    except exceptions.RedisError as exc:
        raise CacheError(_describe("redis command failed", exc)) from exc


class LuaScript:
    """A registered Lua script: EVALSHA, falling back to EVAL (and caching) on NOSCRIPT."""

    def __init__(self, client: redis.Redis, source: str) -> None:
        self._script = client.register_script(source)

    @property
    def sha(self) -> str:
        return str(self._script.sha)

    def __call__(
        self,
        keys: Sequence[str | bytes] = (),
        args: Sequence[Any] = (),
        client: redis.Redis | Any | None = None,
    ) -> Any:
        """Run the script; `client` may be a pipeline (the script is then queued)."""
        with redis_errors():
            return self._script(keys=list(keys), args=list(args), client=client)


def load_script(client: redis.Redis, lua_source: str) -> LuaScript:
    return LuaScript(client, lua_source)


def _describe(prefix: str, exc: Exception) -> str:
    detail = " ".join(str(exc).split())[:200]
    return f"{prefix}: {type(exc).__name__}: {redact_text(detail)}" if detail else prefix
