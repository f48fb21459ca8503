"""Composition of admin-api: settings, services and the function."""

from __future__ import annotations

import hashlib
from functools import cached_property

from hybrid.config import OperatorSettings
from hybrid.handler import FunctionApp
from hybrid.problems import DOMAIN_ERROR_MAP
from hybrid.services import StoreServices, StoreSettings

FUNCTION_NAME = "admin-api"


class AdminApiSettings(StoreSettings, OperatorSettings):
    """Everything admin-api reads from its environment."""


class AdminServices(StoreServices[AdminApiSettings]):
    """admin-api's clients: the store, plus the operator key's hash."""

    @cached_property
    def operator_key_sha256(self) -> bytes:
        return hashlib.sha256(self.settings.operator_key.get_secret_value().encode()).digest()


def build_function() -> FunctionApp[AdminApiSettings]:
    from hybrid.admin.routes import router

    return FunctionApp(
        FUNCTION_NAME,
        settings_cls=AdminApiSettings,
        services=AdminServices,
        router=router,
        error_map=DOMAIN_ERROR_MAP,
    )
