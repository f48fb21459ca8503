"""HTTP edge: request/response wrappers, the router and RFC 9457 problem responses."""

from hybrid.http.problem import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    ProblemError,
    RateLimitedError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnprocessableError,
    UnsupportedMediaTypeError,
)
from hybrid.http.request import MAX_BODY_BYTES, Request
from hybrid.http.response import Response, json_response, no_content
from hybrid.http.router import Route, Router

__all__ = [
    "MAX_BODY_BYTES",
    "BadRequestError",
    "ConflictError",
    "ForbiddenError",
    "MethodNotAllowedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "ProblemError",
    "RateLimitedError",
    "Request",
    "Response",
    "Route",
    "Router",
    "ServiceUnavailableError",
    "UnauthorizedError",
    "UnprocessableError",
    "UnsupportedMediaTypeError",
    "json_response",
    "no_content",
]
