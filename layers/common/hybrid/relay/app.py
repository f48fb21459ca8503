"""Composition of connector-relay: settings, services and the function."""

from __future__ import annotations

from typing import Any

from hybrid.config import RedisSettings
from hybrid.handler import FunctionApp
from hybrid.services import StoreServices, StoreSettings

FUNCTION_NAME = "connector-relay"


class ConnectorRelaySettings(StoreSettings, RedisSettings):
    """Everything connector-relay reads from its environment."""


class RelayServices(StoreServices[ConnectorRelaySettings]):
    """connector-relay's clients: the store and Redis (wake-ups of waiting polls)."""

    operator_key_sha256: bytes | None = None  # connectors sign; no bearer keys here

    def redis(self) -> Any:
        from hybrid.cache import redis_client

        return redis_client(self.settings.redis_url.get_secret_value())


def build_function() -> FunctionApp[ConnectorRelaySettings]:
    from hybrid.relay.routes import ERROR_MAP, router

    return FunctionApp(
        FUNCTION_NAME,
        settings_cls=ConnectorRelaySettings,
        services=RelayServices,
        router=router,
        error_map=ERROR_MAP,
    )
