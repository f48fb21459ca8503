"""Secrets kept in Tencent SSM (Secrets Manager), referenced as ``ssm://<SecretName>[?version=<V>]``.

`GetSecretValue` requires a `VersionId`. Without ``?version=`` the reference asks for
``SSM_Current``: that is the version SSM gives a secret created without an explicit version, and
the version currently in use of a rotated cloud-product secret (SSM API 1140/40522, and the
`CreateSecret.VersionId` field of tencentcloud-sdk-python-ssm). A secret created with a named
version (``v1``) must say so: ``ssm://app-db?version=v1``.

Values are cached in-process for a TTL (warm invocations make no SSM call). When a refresh after
expiry fails for a transient reason (network, throttling, SSM internal error), the previous value
is served for a bounded grace period and a warning names the secret, never its value.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from hybrid import tencent
from hybrid.log import get_logger, register_secret

SCHEME = "ssm://"
DEFAULT_VERSION = "SSM_Current"
DEFAULT_TTL_SECONDS = 300.0
DEFAULT_STALE_GRACE_SECONDS = 900.0
# After a failed refresh, wait this long before asking SSM again (while serving the stale value).
RETRY_BACKOFF_SECONDS = 30.0
ENDPOINT_ENV = "TENCENTCLOUD_SSM_ENDPOINT"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,127}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_log = get_logger(__name__)


class SecretError(Exception):
    """A secret reference is malformed or its value could not be read. Names the secret only."""

    def __init__(
        self,
        message: str,
        *,
        name: str,
        code: str | None = None,
        request_id: str | None = None,
        unavailable: bool = False,
    ) -> None:
        super().__init__(message)
        self.name = name
        self.code = code
        self.request_id = request_id
        self.unavailable = unavailable


@dataclass(frozen=True)
class SecretReference:
    name: str
    version: str = DEFAULT_VERSION


def is_reference(value: str | None) -> bool:
    """True when `value` is meant as an SSM reference (it may still be malformed: see `parse`)."""
    return value is not None and value.strip().lower().startswith(SCHEME)


def parse(reference: str) -> SecretReference:
    """Parse ``ssm://<SecretName>[?version=<VersionId>]``; raises SecretError when malformed."""
    text = reference.strip()
    if not text.lower().startswith(SCHEME):
        raise SecretError("not an ssm:// secret reference", name="")
    rest = text[len(SCHEME) :]
    name, _, query = rest.partition("?")
    if not _NAME.match(name):
        raise SecretError("malformed ssm:// reference: invalid secret name", name="")
    params = parse_qs(query, keep_blank_values=True) if query else {}
    unknown = sorted(set(params) - {"version"})
    if unknown:
        raise SecretError(
            f"malformed ssm:// reference for secret {name}: unknown parameter {unknown[0]}",
            name=name,
        )
    versions = params.get("version", [DEFAULT_VERSION])
    if len(versions) != 1 or not _VERSION.match(versions[0]):
        raise SecretError(f"malformed ssm:// reference for secret {name}: bad version", name=name)
    return SecretReference(name=name, version=versions[0])


Fetcher = Callable[[SecretReference], str]


@dataclass
class _Entry:
    value: str
    expires_at: float
    retry_at: float = 0.0


class SecretResolver:
    """Resolves references through `fetch`, caching values for `ttl_seconds` (thread-safe)."""

    def __init__(
        self,
        fetch: Fetcher | None = None,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        stale_grace_seconds: float = DEFAULT_STALE_GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch or fetch_from_ssm
        self.ttl_seconds = ttl_seconds
        self.stale_grace_seconds = stale_grace_seconds
        self._clock = clock
        self._entries: dict[SecretReference, _Entry] = {}
        self._locks: dict[SecretReference, threading.Lock] = {}
        self._lock = threading.Lock()

    def resolve(self, reference: str) -> str:
        ref = parse(reference)
        with self._lock:
            key_lock = self._locks.setdefault(ref, threading.Lock())
        with key_lock:
            entry = self._entries.get(ref)
            now = self._clock()
            if entry is not None and now < entry.expires_at:
                return entry.value
            stale_until = entry.expires_at + self.stale_grace_seconds if entry else 0.0
            if entry is not None and now < entry.retry_at and now < stale_until:
                return entry.value
            try:
                value = self._fetch(ref)
            except SecretError as exc:
                if entry is None or not exc.unavailable or now >= stale_until:
                    raise
                entry.retry_at = now + RETRY_BACKOFF_SECONDS
                _log.warning(
                    "secret refresh failed, serving stale value",
                    ssm_name=ref.name,
                    ssm_version=ref.version,
                    code=exc.code,
                    request_id=exc.request_id,
                    stale_seconds=round(now - entry.expires_at, 1),
                )
                return entry.value
            register_secret(value)
            self._entries[ref] = _Entry(value=value, expires_at=now + self.ttl_seconds)
            return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._locks.clear()


def fetch_from_ssm(ref: SecretReference) -> str:
    """Call SSM `GetSecretValue` (API 2019-09-23) with the execution role's credentials."""
    from tencentcloud.ssm.v20190923 import models, ssm_client

    try:
        with tencent.sdk_errors("ssm GetSecretValue"):
            client = ssm_client.SsmClient(
                tencent.scf_credential(),
                tencent.region(),
                tencent.client_profile(os.environ.get(ENDPOINT_ENV) or None),
            )
            request = models.GetSecretValueRequest()
            request.SecretName = ref.name
            request.VersionId = ref.version
            response = client.GetSecretValue(request)
    except tencent.TencentCloudError as exc:
        raise SecretError(
            f"could not read secret {ref.name} (version {ref.version}): "
            f"code={exc.code} request_id={exc.request_id or '-'}",
            name=ref.name,
            code=exc.code,
            request_id=exc.request_id,
            unavailable=exc.unavailable,
        ) from None
    if response.SecretString:
        return str(response.SecretString)
    if response.SecretBinary:
        try:
            return base64.b64decode(response.SecretBinary, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise SecretError(
                f"secret {ref.name} (version {ref.version}) is binary, not UTF-8 text",
                name=ref.name,
            ) from None
    raise SecretError(f"secret {ref.name} (version {ref.version}) is empty", name=ref.name)


_default = SecretResolver()


def resolve(reference: str) -> str:
    """The value behind an ``ssm://`` reference, from the in-process cache or SSM."""
    return _default.resolve(reference)


def configure(
    *, ttl_seconds: float | None = None, stale_grace_seconds: float | None = None
) -> None:
    """Change the process-wide cache TTL and stale grace period."""
    if ttl_seconds is not None:
        _default.ttl_seconds = ttl_seconds
    if stale_grace_seconds is not None:
        _default.stale_grace_seconds = stale_grace_seconds


def clear_cache() -> None:
    _default.clear()
