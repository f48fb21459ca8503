"""The object-store port: whole-object put/get, streaming reads, metadata and presigned URLs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol


class StorageError(Exception):
    """An object-store call failed for a reason retrying will not fix."""


class ObjectNotFoundError(StorageError):
    """The key does not exist."""


class StorageUnavailableError(StorageError):
    """The object store cannot be reached, timed out or failed on its side (callers answer 503)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    content_type: str
    # User metadata, names lower-cased without the ``x-cos-meta-`` prefix.
    metadata: Mapping[str, str] = field(default_factory=dict)


class ObjectStore(Protocol):
    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Store `data` under `key`, replacing any object there; returns the ETag (unquoted)."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The whole object; ObjectNotFoundError when it does not exist."""
        ...

    def open_stream(self, key: str) -> BinaryIO:
        """A readable binary stream over the object (close it, or use it as a context manager).

        ObjectNotFoundError when the key does not exist; a read that fails halfway raises
        StorageUnavailableError.
        """
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """The object's size, ETag, type and metadata; None when it does not exist."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""
        ...

    def presign_put(self, key: str, *, expires_in: int, content_type: str | None = None) -> str:
        """A URL that lets its holder PUT the object for `expires_in` seconds.

        With `content_type`, the uploader must send that exact Content-Type header.
        """
        ...

    def presign_get(self, key: str, *, expires_in: int) -> str:
        """A URL that lets its holder GET the object for `expires_in` seconds."""
        ...
