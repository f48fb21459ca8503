"""The egress scanner: the last check before a chunk of rows leaves the customer network.

It runs every detector over every value, whatever the policy said, and fails closed: mappings,
lists, tuples and sets are walked (keys too), bytes are read as UTF-8, and any other value is
scanned in its string form; a value that cannot even be turned into a string is reported as
``unscannable``. The display masks of :mod:`hybrid.masking.masks` pass as clean. A column kept
with ``keep`` that holds detectable PII is refused like any other: mask or pseudonymise it.

Paths are JSONPath-like: ``$[3].contact.mobiles[0]`` for the fourth row of a chunk, ``$.mobile``
when a single row is scanned. A key that holds PII appears masked in a path; no path or message
ever holds a value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from typing import Any, NamedTuple

from hybrid.masking.detect import PII_KINDS, find_pii
from hybrid.masking.errors import PiiLeakError
from hybrid.masking.masks import mask_pii

UNSCANNABLE = "unscannable"
# Deeper nesting than this is scanned through its string form instead of walked.
_MAX_DEPTH = 32
_KIND_ORDER = {kind: rank for rank, kind in enumerate(PII_KINDS)}

_Segment = tuple[bool, Any]  # (is a sequence index, the index or mapping key)


class Finding(NamedTuple):
    """A detector fired: ``kind`` is a PII kind (or ``unscannable``) at ``path``."""

    kind: str
    path: str


def _render(path: tuple[_Segment, ...]) -> str:
    parts = ["$"]
    for is_index, item in path:
        if is_index:
            parts.append(f"[{item}]")
        else:
            try:
                parts.append("." + mask_pii(str(item)))
            except Exception:  # noqa: BLE001 - a key that cannot be printed is not printed
                parts.append(".<key>")
    return "".join(parts)


class _Scan:
    """One scan's walk: the findings so far and the containers it is inside.

    A value's path is its parent's path and its own segment, joined only when it is needed.
    """

    __slots__ = ("ancestors", "clean_keys", "findings")

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        # The containers being walked: one met again inside itself is a cycle, already scanned.
        self.ancestors: set[int] = set()
        # Rows repeat their column names: a key found clean once is clean every time.
        self.clean_keys: set[str] = set()

    def text(self, text: str, parent: tuple[_Segment, ...], segment: _Segment | None) -> None:
        spans = find_pii(text)
        if spans:
            path = _render(parent if segment is None else (*parent, segment))
            for kind in sorted({span.kind for span in spans}, key=_KIND_ORDER.__getitem__):
                self.findings.append(Finding(kind, path))

    def value(
        self, value: Any, parent: tuple[_Segment, ...], segment: _Segment | None, depth: int
    ) -> None:
        if type(value) is str:
            self.text(value, parent, segment)
            return
        if value is None or isinstance(value, bool | date | dt_time | timedelta):
            return  # typed moments and durations: no person in them
        if isinstance(value, str):
            self.text(value, parent, segment)
            return
        if isinstance(value, bytes | bytearray | memoryview):
            self.text(bytes(value).decode("utf-8", "replace"), parent, segment)
            return
        if depth <= _MAX_DEPTH and isinstance(value, Mapping | list | tuple | Set):
            if id(value) in self.ancestors:
                return
            self.ancestors.add(id(value))
            path = parent if segment is None else (*parent, segment)
            if isinstance(value, Mapping):
                for key, item in value.items():
                    if type(key) is not str:
                        self.value(key, path, (False, key), depth + 1)
                    elif key not in self.clean_keys:
                        found = len(self.findings)
                        self.text(key, path, (False, key))
                        if len(self.findings) == found:
                            self.clean_keys.add(key)
                    self.value(item, path, (False, key), depth + 1)
            else:
                for index, item in enumerate(value):
                    self.value(item, path, (True, index), depth + 1)
            self.ancestors.discard(id(value))
            return
        try:
            text = str(value)
        except Exception:  # noqa: BLE001 - fail closed: what cannot be read cannot be sent
            path = parent if segment is None else (*parent, segment)
            self.findings.append(Finding(UNSCANNABLE, _render(path)))
            return
        self.text(text, parent, segment)


def scan(values: Iterable[Any]) -> list[Finding]:
    """Every place in ``values`` where a detector fires, in order.

    ``values`` is usually a chunk of rows (paths start ``$[i]``); a single mapping is scanned
    as one row and a single string or bytes value as one value, never character by character.
    """
    if isinstance(values, str | bytes | bytearray | memoryview | Mapping):
        walk = _Scan()
        walk.value(values, (), None, 0)
        return walk.findings
    rows = values if isinstance(values, list) else list(values)
    # Flat rows (plain scalars under known-clean keys) are checked together: their values'
    # text joined by newlines is scanned once for the whole chunk. No detector matches across a
    # newline (not a separator of digit groups, nor part of an email), so the joined text holds
    # PII exactly when one of the values does. Only then is the chunk scanned row by row, to
    # say where.
    walk = _Scan()
    flat: list[str] = []
    for index, value in enumerate(rows):
        text = _flat_row_text(value, walk.clean_keys) if type(value) is dict else None
        if text is None:
            walk.value(value, (), (True, index), 1)
        else:
            flat.append(text)
    if not flat or not find_pii("\n".join(flat)):
        return walk.findings
    walk = _Scan()
    for index, value in enumerate(rows):
        if type(value) is dict:
            text = _flat_row_text(value, walk.clean_keys)
            if text is not None and not find_pii(text):
                continue
        walk.value(value, (), (True, index), 1)
    return walk.findings


_FLAT_TYPES = (str, int, float, Decimal)


def _flat_row_text(row: dict[Any, Any], clean_keys: set[str]) -> str | None:
    """A row of plain scalars under keys known to be clean: its values' text joined by
    newlines; None for any other row (walked value by value)."""
    parts: list[str] = []
    for key, value in row.items():
        if key not in clean_keys or type(key) is not str:
            return None
        kind = type(value)
        if kind is str:
            parts.append(value)
        elif kind in _SKIPPED_TYPES or isinstance(value, bool | date | dt_time | timedelta):
            continue
        elif isinstance(value, _FLAT_TYPES):
            parts.append(str(value))
        else:
            return None
    return "\n".join(parts)


# The exact types of values that hold no person (a subclass is checked with isinstance).
_SKIPPED_TYPES = frozenset({type(None), bool, date, datetime, dt_time, timedelta})


def assert_clean(chunk: Iterable[Any]) -> None:
    """Raise :class:`PiiLeakError` (kinds and paths, never values) if ``chunk`` holds PII."""
    findings = scan(chunk)
    if findings:
        raise PiiLeakError(findings)
