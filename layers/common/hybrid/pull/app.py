"""Composition of pull-trigger: settings, services and the function (HTTP and timer)."""

from __future__ import annotations

from typing import Any

from hybrid.config import RedisSettings
from hybrid.handler import FunctionApp
from hybrid.services import StoreServices, StoreSettings

FUNCTION_NAME = "pull-trigger"


class PullTriggerSettings(StoreSettings, RedisSettings):
    """Everything pull-trigger reads from its environment."""


class PullServices(StoreServices[PullTriggerSettings]):
    """pull-trigger's clients: the store, Redis (leases, relay wake-ups) and connectors."""

    operator_key_sha256: bytes | None = None  # operators do not run tenants' jobs

    def redis(self) -> Any:
        from hybrid.cache import redis_client

        return redis_client(self.settings.redis_url.get_secret_value())


def build_function() -> FunctionApp[PullTriggerSettings]:
    from hybrid.pull.routes import ERROR_MAP, router
    from hybrid.pull.runner import handle_timer

    function = FunctionApp(
        FUNCTION_NAME,
        settings_cls=PullTriggerSettings,
        services=PullServices,
        router=router,
        error_map=ERROR_MAP,
    )
    function.on("timer", handle_timer)
    return function
