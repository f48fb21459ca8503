"""Composition of alerting: settings, services and the function (HTTP, timer and queue)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

from hybrid.config import RedisSettings
from hybrid.handler import FunctionApp
from hybrid.services import StoreServices, StoreSettings

FUNCTION_NAME = "alerting"


def _empty_is_false(value: Any) -> Any:
    return False if value == "" else value


class AlertingSettings(StoreSettings, RedisSettings):
    """Everything alerting reads from its environment."""

    # Channels may target loopback and private networks (local runs and tests only); an empty
    # value (a descriptor's unset variable) means no.
    alerts_allow_private_targets: Annotated[bool, BeforeValidator(_empty_is_false)] = False


class AlertingServices(StoreServices[AlertingSettings]):
    """alerting's clients: the store and Redis (robots' per-minute limits)."""

    operator_key_sha256: bytes | None = None

    def redis(self) -> Any:
        from hybrid.cache import redis_client

        return redis_client(self.settings.redis_url.get_secret_value())


def build_function() -> FunctionApp[AlertingSettings]:
    from hybrid.alerting.routes import ERROR_MAP, handle_queue, handle_timer, router

    function = FunctionApp(
        FUNCTION_NAME,
        settings_cls=AlertingSettings,
        services=AlertingServices,
        router=router,
        error_map=ERROR_MAP,
    )
    function.on("timer", handle_timer)
    function.on("queue", handle_queue)
    return function
