"""RFC 9457 problem details: the one error shape every HTTP function answers with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://hybrid-sync.dev/problems/"


class ProblemError(Exception):
    """An error that renders as a problem+json response.

    `detail` and `errors` go to the client: never put a secret, SQL text or another tenant's
    identifier in them.
    """

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal Server Error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = list(errors) if errors else []
        self.headers = dict(headers or {})

    @property
    def type_uri(self) -> str:
        return PROBLEM_TYPE_BASE + self.slug

    def to_dict(self, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail or self.title,
            "request_id": request_id,
        }
        if self.errors:
            body["errors"] = self.errors
        return body


class BadRequestError(ProblemError):
    status, slug, title = 400, "bad-request", "Bad Request"


class UnauthorizedError(ProblemError):
    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str = "missing or invalid credentials") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="hybrid-sync"'})


class ForbiddenError(ProblemError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFoundError(ProblemError):
    status, slug, title = 404, "not-found", "Not Found"


class MethodNotAllowedError(ProblemError):
    status, slug, title = 405, "method-not-allowed", "Method Not Allowed"

    def __init__(self, allowed: Sequence[str]) -> None:
        super().__init__(
            f"allowed methods: {', '.join(allowed)}", headers={"Allow": ", ".join(allowed)}
        )


class ConflictError(ProblemError):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLargeError(ProblemError):
    status, slug, title = 413, "payload-too-large", "Payload Too Large"


class UnsupportedMediaTypeError(ProblemError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported Media Type"


class UnprocessableError(ProblemError):
    status, slug, title = 422, "validation-failed", "Unprocessable Content"


class RateLimitedError(ProblemError):
    status, slug, title = 429, "rate-limited", "Too Many Requests"

    def __init__(
        self,
        detail: str,
        *,
        retry_after: int,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        merged = {"Retry-After": str(max(1, retry_after)), **(headers or {})}
        super().__init__(detail, headers=merged)


class ServiceUnavailableError(ProblemError):
    status, slug, title = 503, "service-unavailable", "Service Unavailable"

    def __init__(
        self, detail: str = "a dependency is unavailable", *, retry_after: int = 5
    ) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class InternalServerError(ProblemError):
    """Rendered for unexpected exceptions; the cause goes to the log only."""

    def __init__(self) -> None:
        super().__init__("an unexpected error occurred; quote the request id when reporting it")
