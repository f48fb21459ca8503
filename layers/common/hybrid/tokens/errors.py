"""token-pick's errors; `hybrid.tokens.routes.ERROR_MAP` maps them to HTTP."""

from __future__ import annotations

from hybrid.errors import DomainError, ResourceExistsError, ResourceNotFoundError


class TokenError(DomainError):
    """Base of token-pick's domain errors."""


class TokenNotFoundError(TokenError, ResourceNotFoundError):
    def __init__(self) -> None:
        super().__init__("token not found")


class PoolNotFoundError(TokenError, ResourceNotFoundError):
    def __init__(self) -> None:
        super().__init__("token pool not found")


class TokenExistsError(TokenError, ResourceExistsError):
    def __init__(self) -> None:
        super().__init__("the pool already has a token with this name")


class TokensExhaustedError(TokenError):
    """Every token of the pool is limited (or none is enabled); retry after `retry_after_s`."""

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s
