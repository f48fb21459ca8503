"""Composition of alerting: settings, services and the function (HTTP and timer)."""

from __future__ import annotations

from hybrid.handler import FunctionApp
from hybrid.services import StoreServices, StoreSettings

FUNCTION_NAME = "alerting"


class AlertingSettings(StoreSettings):
    """Everything alerting reads from its environment."""


class AlertingServices(StoreServices[AlertingSettings]):
    """alerting's clients: the store."""

    operator_key_sha256: bytes | None = None


def build_function() -> FunctionApp[AlertingSettings]:
    from hybrid.alerting.routes import ERROR_MAP, handle_timer, router

    function = FunctionApp(
        FUNCTION_NAME,
        settings_cls=AlertingSettings,
        services=AlertingServices,
        router=router,
        error_map=ERROR_MAP,
    )
    function.on("timer", handle_timer)
    return function
