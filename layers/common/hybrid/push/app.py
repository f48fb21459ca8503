"""Composition of push-ingest: settings, services and the function (HTTP, COS and timer)."""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from hybrid.config import CosSettings, RedisSettings
from hybrid.handler import FunctionApp
from hybrid.services import StoreServices, StoreSettings

if TYPE_CHECKING:
    from hybrid.ratelimit import RateLimiter
    from hybrid.storage.port import ObjectStore

FUNCTION_NAME = "push-ingest"


class PushIngestSettings(StoreSettings, RedisSettings, CosSettings):
    """Everything push-ingest reads from its environment."""


_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


class PushServices(StoreServices[PushIngestSettings]):
    """push-ingest's clients: the store, Redis, the rate limiter and COS."""

    operator_key_sha256: bytes | None = None  # operators do not push data

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
