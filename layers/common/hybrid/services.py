"""What every function's services share: the instance's PostgreSQL connection, transactions
and the secret box. Each function adds its own clients on top."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Generic, TypeVar

from hybrid.config import DatabaseSettings, EncryptionSettings
from hybrid.crypto import SecretBox
from hybrid.db import Database, Transaction, database


class StoreSettings(DatabaseSettings, EncryptionSettings):
    """PostgreSQL plus the key that seals stored secrets."""


SettingsT = TypeVar("SettingsT", bound=StoreSettings)


class StoreServices(Generic[SettingsT]):
    """Built per invocation; the connection behind `db` is reused across warm invocations."""

    def __init__(self, settings: SettingsT) -> None:
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
    def secret_box(self) -> SecretBox:
        return SecretBox(self.settings.secrets_encryption_key.get_secret_value())
