"""The one table that maps domain errors to HTTP problem responses."""

from __future__ import annotations

from collections.abc import Callable

from hybrid.errors import (
    AccessDeniedError,
    AuthenticationError,
    InvalidStateError,
    ResourceExistsError,
    ResourceNotFoundError,
    ValidationFailedError,
)
from hybrid.http.problem import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ProblemError,
    UnauthorizedError,
    UnprocessableError,
)

DOMAIN_ERROR_MAP: dict[type[Exception], Callable[[Exception], ProblemError]] = {
    AuthenticationError: lambda exc: UnauthorizedError(str(exc)),
    AccessDeniedError: lambda exc: ForbiddenError(str(exc)),
    ResourceNotFoundError: lambda exc: NotFoundError(str(exc)),
    ResourceExistsError: lambda exc: ConflictError(str(exc)),
    InvalidStateError: lambda exc: ConflictError(str(exc)),
    ValidationFailedError: lambda exc: UnprocessableError(str(exc)),
}
