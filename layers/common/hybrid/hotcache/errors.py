"""The errors of cache-sync; `hybrid.hotcache.routes` maps them to problem responses."""

from __future__ import annotations

from hybrid.errors import DomainError, ValidationFailedError

DEFAULT_RETRY_AFTER_S = 30


class QueryCacheError(DomainError):
    """Base of cache-sync's errors."""


class QueryRefusedError(ValidationFailedError):
    """The caller's query cannot be run or cached: the connector's guard refused it, it
    failed on the source, or its result is too large. Never cached, never retried."""

    def __init__(self, message: str, *, code: str = "query_refused") -> None:
        super().__init__(message)
        self.code = code


class UnmaskedResultError(QueryRefusedError):
    """The egress scanner found personal data in what the connector sent: neither cached
    nor returned."""

    def __init__(self) -> None:
        super().__init__(
            "the result holds personal data the connector did not mask; it is neither "
            "cached nor returned",
            code="pii_detected",
        )


class SourceUnavailableError(QueryCacheError):
    """The connector or its source cannot answer now (a cached copy is served as STALE)."""

    def __init__(self, message: str, *, retry_after: int = DEFAULT_RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)
