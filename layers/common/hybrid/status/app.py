"""Composition of status-probe: settings, services and the function (HTTP and timer)."""

from __future__ import annotations

from typing import Any

from hybrid.config import RedisSettings
from hybrid.handler import FunctionApp
from hybrid.queue import QueueSettings
from hybrid.services import StoreServices, StoreSettings

FUNCTION_NAME = "status-probe"


class StatusProbeSettings(StoreSettings, RedisSettings, QueueSettings):
    """Everything status-probe reads from its environment."""


class StatusServices(StoreServices[StatusProbeSettings]):
    """status-probe's clients: the store, Redis (relay wake-ups), connectors and the queue
    (alerting wake-ups)."""

    operator_key_sha256: bytes | None = None

    def redis(self) -> Any:
        from hybrid.cache import redis_client

        return redis_client(self.settings.redis_url.get_secret_value())

    def queue(self) -> Any:
        from hybrid.queue import queue

        return queue(self.settings, self.redis)


def build_function() -> FunctionApp[StatusProbeSettings]:
    from hybrid.status.routes import ERROR_MAP, handle_timer, router

    function = FunctionApp(
        FUNCTION_NAME,
        settings_cls=StatusProbeSettings,
        services=StatusServices,
        router=router,
        error_map=ERROR_MAP,
    )
    function.on("timer", handle_timer)
    return function
