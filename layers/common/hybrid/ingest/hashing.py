"""Content hashes of record data: SHA-256 over canonical JSON.

Canonical JSON is the UTF-8 encoding of `data` with sorted keys, compact separators and
non-ASCII characters kept as they are. NaN and ±Infinity are not JSON and raise ValueError, as
does a lone surrogate (UnicodeEncodeError). A tombstone has its own hash, which no JSON document
can produce (canonical JSON never starts with a NUL byte).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

TOMBSTONE_HASH = hashlib.sha256(b"\x00tombstone").digest()


def _reject(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _build_encoder() -> Callable[[Any], str]:
    """The C encoder reused across calls: JSONEncoder.encode builds a new one every call."""
    fallback = json.JSONEncoder(
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return fallback
    try:
        c_encode = make(
            None, _reject, json.encoder.encode_basestring, None, ":", ",", True, False, False
        )
    except TypeError:
        return fallback

    def encode(value: Any) -> str:
        return "".join(c_encode(value, 0))

    probe = {"b": [1, 2.5, None, True], "a": "é\n"}
    return encode if encode(probe) == fallback(probe) else fallback


_encode = _build_encoder()


def canonical_json(data: Mapping[str, Any]) -> bytes:
    """The canonical UTF-8 JSON of a document (the bytes that are hashed)."""
    return _encode(data).encode("utf-8")


def hash_canonical(canonical: bytes) -> bytes:
    return hashlib.sha256(canonical).digest()


def content_hash(data: Mapping[str, Any] | None) -> bytes:
    """The hash of a document; None (a deleted record) hashes to TOMBSTONE_HASH."""
    if data is None:
        return TOMBSTONE_HASH
    return hashlib.sha256(canonical_json(data)).digest()
