"""Composition of token-pick: settings, services and the function (HTTP and timer)."""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import Annotated, Any

from pydantic import Field, model_validator

from hybrid.config import InternalSettings, OperatorSettings, RedisSettings
from hybrid.handler import FunctionApp
from hybrid.services import StoreServices, StoreSettings

FUNCTION_NAME = "token-pick"


class TokenPickSettings(StoreSettings, RedisSettings, InternalSettings, OperatorSettings):
    """Everything token-pick reads from its environment."""

    # The `not_before` suggested with each lease: now plus a uniform jitter in this range.
    lease_jitter_min_ms: Annotated[int, Field(ge=0, le=60_000)] = 500
    lease_jitter_max_ms: Annotated[int, Field(ge=0, le=60_000)] = 3_000

    @model_validator(mode="after")
    def _jitter_range(self) -> TokenPickSettings:
        if self.lease_jitter_max_ms < self.lease_jitter_min_ms:
            raise ValueError("LEASE_JITTER_MAX_MS must not be below LEASE_JITTER_MIN_MS")
        return self


class TokenServices(StoreServices[TokenPickSettings]):
    """token-pick's clients: the store, Redis (the picker and the health lease) and the probe."""

    @cached_property
    def operator_key_sha256(self) -> bytes:
        return hashlib.sha256(self.settings.operator_key.get_secret_value().encode()).digest()

    @cached_property
    def internal_key_sha256(self) -> bytes:
        return hashlib.sha256(self.settings.internal_api_key.get_secret_value().encode()).digest()

    def redis(self) -> Any:
        from hybrid.cache import redis_client

        return redis_client(self.settings.redis_url.get_secret_value())

    @cached_property
    def picker(self) -> Any:
        from hybrid.tokens.picker import TokenPicker

        return TokenPicker(self.redis)

    def token_probe(self) -> Any:
        from hybrid.tokens.probe import HttpTokenProbe

        return HttpTokenProbe()


def build_function() -> FunctionApp[TokenPickSettings]:
    from hybrid.tokens.routes import ERROR_MAP, handle_timer, router

    function = FunctionApp(
        FUNCTION_NAME,
        settings_cls=TokenPickSettings,
        services=TokenServices,
        router=router,
        error_map=ERROR_MAP,
    )
    function.on("timer", handle_timer)
    return function
