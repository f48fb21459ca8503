"""Shared plumbing for Tencent Cloud API 3.0 clients (tencentcloud-sdk-python).

Credentials come from the SCF execution role (`TENCENTCLOUD_SECRETID`, `TENCENTCLOUD_SECRETKEY`,
`TENCENTCLOUD_SESSIONTOKEN`), read at call time because the platform rotates them; the SDK's own
default chain reads other names and never a token, so it is only the local/CI fallback.
The SDK is imported inside the functions: importing this module stays cheap for cold starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from hybrid.log import register_secret

DEFAULT_REGION = "ap-guangzhou"
DEFAULT_TIMEOUT_SECONDS = 5

# Client-side codes the SDK uses for transport failures, and the documented common server codes
# that mean "try again later" rather than "this request is wrong".
_UNAVAILABLE_CODES = frozenset(
    {"ClientNetworkError", "ServerNetworkError", "InternalError", "RequestLimitExceeded"}
)
_MAX_DETAIL = 300


class TencentCloudError(Exception):
    """A Tencent Cloud API call failed. Carries the API error code and request id, never keys."""

    def __init__(self, message: str, *, code: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id

    @property
    def unavailable(self) -> bool:
        """True when the failure is transient (network, throttling, server side)."""
        return self.code in _UNAVAILABLE_CODES or self.code.startswith(
            ("InternalError.", "RequestLimitExceeded.")
        )


def region() -> str:
    return os.environ.get("TENCENTCLOUD_REGION") or DEFAULT_REGION


def scf_credential() -> Any:
    """A `tencentcloud.common.credential.Credential` for the current execution role.

    Falls back to the SDK's default provider chain (env `TENCENTCLOUD_SECRET_ID`/`_KEY`, profile
    file, CVM role) when the SCF role variables are absent. Raises TencentCloudError when no
    credential can be found.
    """
    from tencentcloud.common import credential
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
        TencentCloudSDKException,
    )

    secret_id = os.environ.get("TENCENTCLOUD_SECRETID")
    secret_key = os.environ.get("TENCENTCLOUD_SECRETKEY")
    token = os.environ.get("TENCENTCLOUD_SESSIONTOKEN") or None
    try:
        if secret_id and secret_key:
            register_secret(secret_key)
            register_secret(token)
            return credential.Credential(secret_id, secret_key, token)
        return credential.DefaultCredentialProvider().get_credential()
    except TencentCloudSDKException as exc:
        raise TencentCloudError(
            f"no usable tencent cloud credential: code={exc.code}", code=str(exc.code or "")
        ) from None
    except OSError as exc:  # the provider chain's last link (TKE OIDC) raises a bare OSError
        raise TencentCloudError(
            f"no usable tencent cloud credential: {type(exc).__name__}", code="NoCredential"
        ) from None


def client_profile(endpoint: str | None = None, *, timeout: int = DEFAULT_TIMEOUT_SECONDS) -> Any:
    """A `ClientProfile` (TC3-HMAC-SHA256, POST JSON) with a short timeout.

    `endpoint` overrides the service domain: a host (`ssm.tencentcloudapi.com`, https) or a URL
    with a scheme (`http://127.0.0.1:8080`, as tests use).
    """
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile

    scheme, host = "https", None
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        scheme, host = parts.scheme, parts.netloc
    http = HttpProfile(protocol=scheme, endpoint=host, reqTimeout=timeout, keepAlive=True)
    return ClientProfile(signMethod="TC3-HMAC-SHA256", httpProfile=http)


def translate(exc: Exception, *, action: str) -> TencentCloudError:
    """Turn a `TencentCloudSDKException` (or any SDK failure) into a TencentCloudError."""
    code = str(getattr(exc, "code", None) or type(exc).__name__)
    request_id = getattr(exc, "requestId", None) or None
    raw = getattr(exc, "message", None)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    detail = " ".join(str(raw or "").split())[:_MAX_DETAIL]
    message = f"{action} failed: code={code} request_id={request_id or '-'}"
    if detail:
        message = f"{message}: {_scrub(detail)}"
    return TencentCloudError(message, code=code, request_id=request_id)


@contextmanager
def sdk_errors(action: str) -> Iterator[None]:
    """Translate SDK exceptions raised inside the block into TencentCloudError."""
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
        TencentCloudSDKException,
    )

    try:
        yield
    except TencentCloudSDKException as exc:
        raise translate(exc, action=action) from exc


def _scrub(text: str) -> str:
    from hybrid.log import redact_text

    for name in ("TENCENTCLOUD_SECRETKEY", "TENCENTCLOUD_SESSIONTOKEN", "TENCENTCLOUD_SECRET_KEY"):
        value = os.environ.get(name)
        if value and value in text:
            text = text.replace(value, "[REDACTED]")
    return redact_text(text)
