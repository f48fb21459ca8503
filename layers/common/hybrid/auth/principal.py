"""Authentication of a request and the scope checks every function reuses."""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from hybrid.auth.keys import API_KEY_PREFIX, hash_secret, parse_api_key, secrets_equal
from hybrid.errors import AccessDeniedError, AuthenticationError
from hybrid.http.request import Request

SCOPES = frozenset({"ingest:write", "status:read", "query:read", "jobs:write", "admin"})
# A tenant admin may do anything within its tenant.
_ADMIN_SCOPE = "admin"
# Compared against when the key id is unknown, so a miss costs the same as a wrong secret.
_DUMMY_HASH = hashlib.sha256(b"no such key").digest()
INTERNAL_KEY_HEADER = "X-Internal-API-Key"


@dataclass(frozen=True)
class Principal:
    kind: Literal["operator", "api_key", "internal"]
    tenant_id: str | None = None
    scopes: frozenset[str] = frozenset()
    key_id: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.kind == "operator"

    @property
    def actor(self) -> str:
        return self.key_id if self.key_id else self.kind

    def has_scopes(self, required: Iterable[str]) -> bool:
        if self.is_operator or _ADMIN_SCOPE in self.scopes:
            return True
        return set(required) <= self.scopes

    def can_access(self, tenant_id: str) -> bool:
        return self.is_operator or self.tenant_id == tenant_id


class AuthServices(Protocol):
    """What authentication needs from a function's services."""

    @property
    def operator_key_sha256(self) -> bytes | None: ...

    def read(self) -> Any:
        """A context manager yielding a database transaction."""


def authenticate(request: Request, services: AuthServices) -> Principal:
    token = _bearer_token(request)
    if token.startswith(API_KEY_PREFIX):
        return _authenticate_api_key(token, services)
    expected = services.operator_key_sha256
    if expected is not None and hmac.compare_digest(hash_secret(token), expected):
        return Principal(kind="operator")
    raise AuthenticationError("invalid credentials")


def authenticate_internal(request: Request, expected_sha256: bytes | None) -> Principal:
    """The internal service key of `X-Internal-API-Key`, compared (as a hash) in constant time;
    a bearer key of any kind is not an internal credential."""
    presented = request.header(INTERNAL_KEY_HEADER)
    if not presented:
        raise AuthenticationError(f"missing {INTERNAL_KEY_HEADER} credentials")
    matches = hmac.compare_digest(
        hash_secret(presented[:512]), expected_sha256 if expected_sha256 else _DUMMY_HASH
    )
    if expected_sha256 is None or not matches or len(presented) > 512:
        raise AuthenticationError("invalid credentials")
    return Principal(kind="internal")


def require_internal(
    *, operator: bool = False
) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Route decorator for service-to-service routes: the internal key (the services expose its
    SHA-256 as `internal_key_sha256`); with `operator`, a request without it may instead bring
    the operator's bearer key (platform administration, e.g. the dashboard's token pool)."""

    def decorate(handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        @functools.wraps(handler)
        def guarded(call: Any) -> Any:
            if operator and not call.request.header(INTERNAL_KEY_HEADER):
                principal = authenticate(call.request, call.services)
                if not principal.is_operator:
                    raise AccessDeniedError("this route takes the internal or the operator key")
            else:
                expected = getattr(call.services, "internal_key_sha256", None)
                principal = authenticate_internal(call.request, expected)
            from hybrid import log

            log.bind(actor=principal.actor)
            return handler(call.with_principal(principal))

        guarded.required_scopes = ()  # type: ignore[attr-defined]
        guarded.any_of = False  # type: ignore[attr-defined]
        guarded.operator_only = False  # type: ignore[attr-defined]
        guarded.internal_only = True  # type: ignore[attr-defined]
        guarded.operator_allowed = operator  # type: ignore[attr-defined]
        return guarded

    return decorate


def require(
    *scopes: str, operator: bool = False, any_of: tuple[str, ...] = ()
) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Route decorator: authenticate, check the role and scopes (all of `scopes`, and at least
    one of `any_of` when given), pass the principal on."""
    unknown = (set(scopes) | set(any_of)) - SCOPES
    if unknown:
        raise ValueError(f"unknown scopes {sorted(unknown)}")

    def decorate(handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        @functools.wraps(handler)
        def guarded(call: Any) -> Any:
            principal = authenticate(call.request, call.services)
            if operator and not principal.is_operator:
                raise AccessDeniedError("operator credentials required")
            if not principal.has_scopes(scopes):
                raise AccessDeniedError(f"this operation needs the scope {', '.join(scopes)}")
            if any_of and not any(principal.has_scopes([scope]) for scope in any_of):
                raise AccessDeniedError(
                    f"this operation needs one of the scopes {', '.join(any_of)}"
                )
            from hybrid import log

            log.bind(tenant_id=principal.tenant_id, actor=principal.actor)
            return handler(call.with_principal(principal))

        guarded.required_scopes = scopes or any_of  # type: ignore[attr-defined]
        guarded.any_of = bool(any_of)  # type: ignore[attr-defined]
        guarded.operator_only = operator  # type: ignore[attr-defined]
        return guarded

    return decorate


def _bearer_token(request: Request) -> str:
    header = request.header("authorization")
    if not header:
        raise AuthenticationError("missing Authorization: Bearer credentials")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        raise AuthenticationError("expected Authorization: Bearer <key>")
    return token


def _authenticate_api_key(token: str, services: AuthServices) -> Principal:
    from hybrid.auth.store import key_credentials, touch_last_used

    parsed = parse_api_key(token)
    if parsed is None:
        raise AuthenticationError("invalid credentials")
    with services.read() as tx:
        credentials = key_credentials(tx, parsed.key_id)
        matches = secrets_equal(
            parsed.secret, credentials.secret_sha256 if credentials else _DUMMY_HASH
        )
        if credentials is None or not matches or credentials.revoked:
            raise AuthenticationError("invalid credentials")
        if not credentials.tenant_active:
            raise AccessDeniedError("the tenant is suspended")
        touch_last_used(tx, credentials.key_id)
    return Principal(
        kind="api_key",
        tenant_id=credentials.tenant_id,
        scopes=credentials.scopes,
        key_id=credentials.key_id,
    )
