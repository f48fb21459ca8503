"""Composition of cache-sync: settings, services and the function (HTTP and timer)."""

from __future__ import annotations

from typing import Any

from hybrid.config import RedisSettings
from hybrid.handler import FunctionApp
from hybrid.hotcache.policy import DEFAULT_POLICY, CachePolicy
from hybrid.services import StoreServices, StoreSettings

FUNCTION_NAME = "cache-sync"


class CacheSyncSettings(StoreSettings, RedisSettings):
    """Everything cache-sync reads from its environment."""


class CacheServices(StoreServices[CacheSyncSettings]):
    """cache-sync's clients: the store, Redis (the cache, leases, relay wake-ups) and
    connectors."""

    operator_key_sha256: bytes | None = None  # operators do not query tenants' data
    policy: CachePolicy = DEFAULT_POLICY

    def redis(self) -> Any:
        from hybrid.cache import redis_client

        return redis_client(self.settings.redis_url.get_secret_value())


def build_function() -> FunctionApp[CacheSyncSettings]:
    from hybrid.hotcache.routes import ERROR_MAP, handle_timer, router

    function = FunctionApp(
        FUNCTION_NAME,
        settings_cls=CacheSyncSettings,
        services=CacheServices,
        router=router,
        error_map=ERROR_MAP,
    )
    function.on("timer", handle_timer)
    return function
