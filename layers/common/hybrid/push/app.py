"""Composition of push-ingest: settings, services and the function (HTTP, COS and timer)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from hybrid.config import CosSettings, DatabaseSettings, EncryptionSettings, RedisSettings
from hybrid.crypto import SecretBox
from hybrid.db import Database, Transaction, database
from hybrid.handler import FunctionApp

if TYPE_CHECKING:
    from hybrid.ratelimit import RateLimiter
    from hybrid.storage.port import ObjectStore

FUNCTION_NAME = "push-ingest"


class PushIngestSettings(DatabaseSettings, RedisSettings, CosSettings, EncryptionSettings):
    """Everything push-ingest reads from its environment."""


_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


class PushServices:
    """The clients one invocation uses; connections and limiters are cached per instance."""

    operator_key_sha256: bytes | None = None  # operators do not push data

    def __init__(self, settings: PushIngestSettings) -> None:
        self.settings = settings

    @property
    def db(self) -> Database:
        return database(self.settings.database_url.get_secret_value())

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        with self.db.transaction() as tx:
            yield tx

    write = read

    def redis(self) -> Any:
        from hybrid.cache import redis_client

        return redis_client(self.settings.redis_url.get_secret_value())

    @property
    def rate_limiter(self) -> RateLimiter:
        # One per instance: its per-instance fallback keeps state while Redis is down.
        from hybrid.ratelimit import RateLimiter

        url = self.settings.redis_url.get_secret_value()
        with _limiters_lock:
            limiter = _limiters.get(url)
            if limiter is None:
                limiter = _limiters[url] = RateLimiter(self.redis)
            return limiter

    @cached_property
    def object_store(self) -> ObjectStore:
        from hybrid.storage import object_store

        return object_store(self.settings)

    @cached_property
    def secret_box(self) -> SecretBox:
        return SecretBox(self.settings.secrets_encryption_key.get_secret_value())


def build_function() -> FunctionApp[PushIngestSettings]:
    from hybrid.push.jobs import handle_cos_event, handle_timer
    from hybrid.push.routes import ERROR_MAP, router

    function = FunctionApp(
        FUNCTION_NAME,
        settings_cls=PushIngestSettings,
        services=PushServices,
        router=router,
        error_map=ERROR_MAP,
    )
    function.on("cos", handle_cos_event)
    function.on("timer", handle_timer)
    return function
