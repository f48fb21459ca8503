"""Typed settings, read from the environment once per cold start.

Each function composes the settings groups it needs into one class; a test keeps the environment
variables those classes read in step with the deploy descriptors (`env_names`). A secret may be
given as a Tencent SSM reference, ``ssm://<secret-name>[?version=<version>]``, resolved on load.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal, TypeVar

from pydantic import AliasChoices, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SettingsT = TypeVar("SettingsT", bound="FunctionSettings")

SETTINGS_TTL_SECONDS = 300.0


class ConfigError(Exception):
    """The function's configuration is missing or invalid (a deploy problem, not a caller's)."""


class FunctionSettings(BaseSettings):
    """Settings every function reads."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, frozen=True)

    app_env: Literal["local", "test", "dev", "staging", "prod"] = "local"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class DatabaseSettings(FunctionSettings):
    database_url: SecretStr


class RedisSettings(FunctionSettings):
    redis_url: SecretStr


class CosSettings(FunctionSettings):
    cos_region: str
    cos_bucket: str
    cos_secret_id: SecretStr
    cos_secret_key: SecretStr
    # Only for the local emulator (an S3/COS-compatible server on loopback); unset in the cloud.
    cos_endpoint_url: str | None = None


class OperatorSettings(FunctionSettings):
    operator_key: SecretStr


def env_names(settings_cls: type[BaseSettings]) -> set[str]:
    """The environment variable names a settings class reads."""
    names: set[str] = set()
    prefix = settings_cls.model_config.get("env_prefix", "")
    for name, field in settings_cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{name}".upper())
    return names


_cache: dict[type[Any], tuple[float, Any]] = {}
_cache_lock = threading.Lock()


def load_settings(settings_cls: type[SettingsT], *, ttl: float = SETTINGS_TTL_SECONDS) -> SettingsT:
    """Build (or reuse for `ttl` seconds) the settings, with SSM references resolved.

    Raises ConfigError naming the invalid variables, never their values.
    """
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(settings_cls)
        if cached is not None and now - cached[0] < ttl:
            return cached[1]  # type: ignore[no-any-return]
    settings = _build(settings_cls)
    with _cache_lock:
        _cache[settings_cls] = (now, settings)
    return settings


def clear_settings_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _build(settings_cls: type[SettingsT]) -> SettingsT:
    from pydantic import ValidationError

    from hybrid import secrets
    from hybrid.log import register_secret

    try:
        settings = settings_cls()
    except ValidationError as exc:
        problems = ", ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    updates: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            raw = value.get_secret_value()
            if secrets.is_reference(raw):
                raw = secrets.resolve(raw)
                updates[name] = SecretStr(raw)
            register_secret(raw)
    return settings.model_copy(update=updates) if updates else settings


class EncryptionSettings(FunctionSettings):
    # base64 of 32 bytes; seals secrets the platform must read back (connector secrets, tokens).
    secrets_encryption_key: SecretStr


class InternalSettings(FunctionSettings):
    # Presented by internal services in X-Internal-API-Key (token-pick); compared as a hash.
    internal_api_key: SecretStr
