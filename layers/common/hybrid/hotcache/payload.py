"""What a cache entry holds: the result as compact JSON ``{"columns", "rows", "row_count"}``,
zstd-compressed, and the SHA-256 of that JSON (a refresh compares it to skip rewrites).

A hit is answered by splicing the request's fields into the stored JSON, without parsing
and re-serialising the rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ZSTD_LEVEL = 3


@dataclass(frozen=True)
class Encoded:
    """A result ready to store: the JSON's compressed form, its hash and plain size."""

    compressed: bytes
    content_hash: str
    plain_bytes: int
    row_count: int


def encode(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> tuple[bytes, Encoded]:
    """The result's JSON and what to store of it."""
    from hybrid.connectors.protocol import dumps

    plain = dumps({"columns": list(columns), "rows": list(rows), "row_count": len(rows)})
    return plain, Encoded(
        compressed=compress(plain),
        content_hash=hashlib.sha256(plain).hexdigest(),
        plain_bytes=len(plain),
        row_count=len(rows),
    )


def compress(data: bytes) -> bytes:
    import zstandard

    # Compressor objects are not safe to share between threads: one per call (cheap).
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)


def decompress(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompress(data)


def response_body(plain: bytes, extra: dict[str, Any]) -> bytes:
    """The stored JSON object with `extra`'s fields appended (its keys are not in it)."""
    if not plain.endswith(b"}"):
        raise ValueError("a cached payload must be a JSON object")
    tail = json.dumps(extra, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    return plain[:-1] + b"," + tail[1:]
