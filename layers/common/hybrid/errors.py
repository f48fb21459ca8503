"""The categories every domain error falls into; `hybrid.problems` maps them to HTTP."""

from __future__ import annotations


class DomainError(Exception):
    """Base of domain errors. The message is safe to show to the caller who caused it."""


class AuthenticationError(DomainError):
    """Missing, malformed, unknown, revoked or wrong credentials."""


class AccessDeniedError(DomainError):
    """Valid credentials without the scope or role the operation needs."""


class ResourceNotFoundError(DomainError):
    """Unknown, or not the caller's: the two are indistinguishable on purpose."""


class ResourceExistsError(DomainError):
    """A unique name or key is already taken."""


class InvalidStateError(DomainError):
    """The resource is in a state that does not allow the operation."""


class ValidationFailedError(DomainError):
    """Well-formed input that the domain refuses (a bad schedule, an unknown column)."""
