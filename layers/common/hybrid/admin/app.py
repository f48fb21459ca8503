"""Composition of admin-api: settings, services and the function."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property

from hybrid.config import DatabaseSettings, EncryptionSettings, OperatorSettings
from hybrid.crypto import SecretBox
from hybrid.db import Database, Transaction, database
from hybrid.handler import FunctionApp
from hybrid.problems import DOMAIN_ERROR_MAP

FUNCTION_NAME = "admin-api"


class AdminApiSettings(DatabaseSettings, OperatorSettings, EncryptionSettings):
    """Everything admin-api reads from its environment."""


class AdminServices:
    """The clients one invocation uses; the expensive ones are cached per instance."""

    def __init__(self, settings: AdminApiSettings) -> None:
        self.settings = settings

    @property
    def db(self) -> Database:
        return database(self.settings.database_url.get_secret_value())

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        with self.db.transaction() as tx:
            yield tx

    write = read

    @cached_property
    def operator_key_sha256(self) -> bytes:
        return hashlib.sha256(self.settings.operator_key.get_secret_value().encode()).digest()

    @cached_property
    def secret_box(self) -> SecretBox:
        return SecretBox(self.settings.secrets_encryption_key.get_secret_value())


def build_function() -> FunctionApp[AdminApiSettings]:
    from hybrid.admin.routes import router

    return FunctionApp(
        FUNCTION_NAME,
        settings_cls=AdminApiSettings,
        services=AdminServices,
        router=router,
        error_map=DOMAIN_ERROR_MAP,
    )
