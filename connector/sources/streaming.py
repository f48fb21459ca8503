"""The row stream both sources return: rows as dicts, fetched in batches, under the row and
byte caps. Each source supplies how a batch is fetched and how its connection is returned."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

from connector.sources.errors import LimitExceededError


class RowStream(Iterator[dict[str, Any]], ABC):
    """The rows of one query; ends its transaction when exhausted or closed.

    `columns` is known once the first batch is in (a repeated name gets ``_2``, ``_3``, …).
    `row_count`, `byte_count` and `truncated` (the row cap was reached and more rows existed)
    are final once the stream ends. Byte counts are the rows' decoded sizes (UTF-8 text, raw
    bytes, 8 per number).
    """

    def __init__(self, *, row_cap: int, max_bytes: int, fetch_rows: int) -> None:
        self.columns: tuple[str, ...] = ()
        self.row_count = 0
        self.byte_count = 0
        self.truncated = False
        self._row_cap = row_cap
        self._max_bytes = max_bytes
        self._fetch_rows = fetch_rows
        self._open = True
        self._batch: list[Any] = []
        self._position = 0
        self._exhausted = False

    @abstractmethod
    def _fetch_batch(self, wanted: int) -> list[Any]:
        """The next rows, at most `wanted` (fewer means the result is exhausted)."""

    @abstractmethod
    def _release(self, *, exhausted: bool) -> None:
        """Roll back and hand the connection back to the source's pool."""

    def __iter__(self) -> RowStream:
        return self

    def __next__(self) -> dict[str, Any]:
        while self._position >= len(self._batch):
            if self._exhausted or not self._open:
                self.close()
                raise StopIteration
            try:
                self._fetch_more()
            except BaseException:
                self.close()
                raise
        row = self._batch[self._position]
        self._position += 1
        if self.row_count >= self._row_cap:
            self.truncated = True
            self.close()
            raise StopIteration
        size = row_size(row)
        if self.byte_count + size > self._max_bytes:
            self.close()
            raise LimitExceededError("bytes", self._max_bytes)
        self.row_count += 1
        self.byte_count += size
        return dict(zip(self.columns, row, strict=True))

    def close(self) -> None:
        """Roll back and return the connection; safe to call more than once."""
        was_open, self._open = self._open, False
        self._batch = []
        if was_open:
            self._release(exhausted=self._exhausted)

    def __enter__(self) -> RowStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_open", False):
            self.close()

    def _fetch_more(self) -> None:
        wanted = max(1, min(self._fetch_rows, self._row_cap - self.row_count + 1))
        self._batch = self._fetch_batch(wanted)
        self._position = 0
        self._exhausted = len(self._batch) < wanted


def unique_columns(names: Sequence[str]) -> tuple[str, ...]:
    """Column names as dict keys: a repeated name (``?column?``, two casts of one column)
    becomes ``name_2``, ``name_3``, … skipping names the query already returns."""
    taken = set(names)
    seen: set[str] = set()
    unique = []
    for name in names:
        candidate, number = name, 1
        while candidate in seen or (candidate != name and candidate in taken):
            number += 1
            candidate = f"{name}_{number}"
        seen.add(candidate)
        unique.append(candidate)
    return tuple(unique)


def row_size(row: Sequence[Any]) -> int:
    size = 0
    for value in row:
        if value is None:
            continue
        if isinstance(value, str):
            size += len(value) if value.isascii() else len(value.encode("utf-8"))
        elif isinstance(value, (bytes, bytearray, memoryview)):
            size += len(value)
        elif isinstance(value, (int, float, bool)):
            size += 8
        else:
            size += len(str(value))
    return size
