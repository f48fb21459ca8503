"""Object storage: the `ObjectStore` port, the COS adapter and a cached factory."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from hybrid.storage.port import (
    ObjectInfo,
    ObjectNotFoundError,
    ObjectStore,
    StorageError,
    StorageUnavailableError,
)

if TYPE_CHECKING:
    from hybrid.config import CosSettings

__all__ = [
    "ObjectInfo",
    "ObjectNotFoundError",
    "ObjectStore",
    "StorageError",
    "StorageUnavailableError",
    "clear_object_stores",
    "object_store",
]

_stores: dict[tuple[str, ...], ObjectStore] = {}
_lock = threading.Lock()


def object_store(settings: CosSettings) -> ObjectStore:
    """The COS store for these settings, built once per process and reused by warm invocations."""
    key = (
        settings.cos_region,
        settings.cos_bucket,
        settings.cos_secret_id.get_secret_value(),
        settings.cos_secret_key.get_secret_value(),
        settings.cos_endpoint_url or "",
    )
    store = _stores.get(key)
    if store is not None:
        return store
    from hybrid.storage.cos import CosObjectStore

    with _lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = CosObjectStore.from_settings(settings)
    return store


def clear_object_stores() -> None:
    with _lock:
        _stores.clear()
