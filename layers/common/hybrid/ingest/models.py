"""Pushed records, their validation, and a source's ingestion settings.

A record that cannot be stored (bad key or time, missing data, NUL characters that PostgreSQL's
jsonb refuses, NaN, oversized or too deeply nested data) is rejected on its own: it never
reaches the database, so it can never fail the rest of its batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar, get_args, overload

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SkipValidation,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hybrid.ingest.hashing import TOMBSTONE_HASH, _encode, canonical_json, hash_canonical

if TYPE_CHECKING:
    from pydantic import TypeAdapter

Strategy = Literal[
    "timestamp_priority", "source_priority", "keep_both", "manual_review", "merge_fields"
]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
Operation = Literal["upsert", "delete"]
T = TypeVar("T")

MAX_KEY_LENGTH = 512
MAX_DATA_BYTES = 256 * 1024
MAX_DATA_DEPTH = 32
# Error locations are caller-supplied field names: keep them short in responses.
_MAX_LOC_PART = 128

# Raised by the record-level validator; reported at loc ["data"].
_DATA_ERRORS = frozenset(
    {"data_required", "data_forbidden", "dict_type", "data_not_json", "data_too_large",
     "data_too_deep", "data_contains_nul"}
)  # fmt: skip


@dataclass(frozen=True)
class SourceConfig:
    """What the engine needs to know about the source of a push."""

    name: str
    priority: int
    default_strategy: Strategy


@dataclass(frozen=True)
class Rejection:
    """A record that failed validation: its position in the batch and why (never its values).

    Each error is `{"loc": [...], "msg": str, "type": str}`, `loc` relative to the record.
    """

    index: int
    errors: list[dict[str, Any]]


class _memo(Generic[T]):
    """cached_property without the lock Python 3.10/3.11 take on every first read."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self._compute = compute
        self._name = compute.__name__
        self.__doc__ = compute.__doc__

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> _memo[T]: ...

    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type[Any] | None = None) -> T | _memo[T]:
        if instance is None:
            return self
        value = self._compute(instance)
        instance.__dict__[self._name] = value
        return value


def _check_key(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("key_invalid", "key must not contain NUL characters")
    if value != value.strip():
        raise PydanticCustomError("key_invalid", "key must not start or end with whitespace")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PydanticCustomError("key_invalid", "key is not valid Unicode text") from None
    return value


def _rfc3339_shape(value: Any) -> Any:
    """Only RFC 3339 strings (or datetimes from Python callers): pydantic alone would also take
    numbers and digit strings as Unix times."""
    if isinstance(value, datetime):
        return value
    if (
        not isinstance(value, str)
        or len(value) < 20
        or value[4:5] != "-"
        or value[10:11] not in ("T", "t", " ")
    ):
        raise PydanticCustomError(
            "datetime_format",
            "Input should be an RFC 3339 date-time with a time zone, e.g. 2026-11-20T08:00:00Z",
        )
    return value


def _as_utc(value: datetime) -> datetime:
    """Stored in UTC: PostgreSQL accepts offsets up to ±15:59 only, Python up to ±23:59."""
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_range", "updated_at is out of the supported date range"
        ) from None


class IncomingRecord(BaseModel):
    """One pushed record. Treat instances as immutable: the canonical JSON is cached."""

    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(_memo,))

    key: Annotated[str, Field(min_length=1, max_length=MAX_KEY_LENGTH), AfterValidator(_check_key)]
    op: Operation = "upsert"
    updated_at: Annotated[AwareDatetime, BeforeValidator(_rfc3339_shape), AfterValidator(_as_utc)]
    # Checked (and encoded) by _check_data: validating it field by field would copy it.
    data: SkipValidation[dict[str, Any] | None] = None

    @_memo
    def canonical_data(self) -> bytes | None:
        """The canonical JSON of `data` (None for a delete)."""
        return None if self.data is None else canonical_json(self.data)

    @_memo
    def content_hash(self) -> bytes:
        canonical = self.canonical_data
        return TOMBSTONE_HASH if canonical is None else hash_canonical(canonical)

    @model_validator(mode="after")
    def _check_data(self) -> IncomingRecord:
        if self.op == "delete":
            if self.data is not None:
                raise PydanticCustomError(
                    "data_forbidden", "data must be absent or null for a delete"
                )
            return self
        if self.data is None:
            raise PydanticCustomError("data_required", "data is required for an upsert")
        if not isinstance(self.data, dict):
            raise PydanticCustomError("dict_type", "Input should be a valid dictionary")
        try:
            canonical = _encode(self.data).encode("utf-8")
        except RecursionError:
            raise _too_deep() from None
        except (ValueError, TypeError):
            raise PydanticCustomError(
                "data_not_json",
                "data holds a value JSON cannot represent (NaN, Infinity or invalid Unicode)",
            ) from None
        if len(canonical) > MAX_DATA_BYTES:
            raise PydanticCustomError(
                "data_too_large",
                "data is larger than {limit} bytes as JSON",
                {"limit": MAX_DATA_BYTES},
            )
        if b"\\u0000" in canonical and _contains_nul(self.data):
            raise PydanticCustomError(
                "data_contains_nul", "data must not contain NUL characters (\\u0000)"
            )
        # Each level opens a bracket, so few brackets means shallow: skip the walk.
        brackets = canonical.count(b"{") + canonical.count(b"[")
        if brackets > MAX_DATA_DEPTH and _depth(self.data) > MAX_DATA_DEPTH:
            raise _too_deep()
        # Computed here anyway: cache them for the engine (what the memos would store).
        self.__dict__["canonical_data"] = canonical
        self.__dict__["content_hash"] = hash_canonical(canonical)
        return self


def _too_deep() -> PydanticCustomError:
    return PydanticCustomError(
        "data_too_deep", "data is nested deeper than {limit} levels", {"limit": MAX_DATA_DEPTH}
    )


def _contains_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            for name, child in item.items():
                if "\x00" in str(name):
                    return True
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _depth(value: Any) -> int:
    """Nesting depth (the document itself is 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


@cache
def _records_adapter() -> TypeAdapter[list[IncomingRecord]]:
    from pydantic import TypeAdapter

    return TypeAdapter(list[IncomingRecord])


def validate_records(
    raw: Sequence[Any],
) -> tuple[list[tuple[int, IncomingRecord]], list[Rejection]]:
    """Split raw records into valid ones (with their index) and rejections, both in order.

    A clean batch is validated in one call; when some records fail, the failing ones are set
    aside and the rest validated again, so the cost stays near one pass. pydantic raises
    UnicodeEncodeError (not a ValidationError) for a lone surrogate in a string it validates:
    then each record is validated on its own.
    """
    from pydantic import ValidationError

    adapter = _records_adapter()
    items = list(raw)
    positions = list(range(len(items)))
    rejected: dict[int, list[dict[str, Any]]] = {}
    while True:
        try:
            records = adapter.validate_python(items)
            break
        except UnicodeEncodeError:
            return _validate_one_by_one(items, positions, rejected)
        except ValidationError as exc:
            failed = _errors_by_index(exc, positions)
            rejected.update(failed)
            kept = [(p, item) for p, item in zip(positions, items, strict=True) if p not in failed]
            positions = [p for p, _ in kept]
            items = [item for _, item in kept]
    valid = list(zip(positions, records, strict=True))
    return valid, [Rejection(index, rejected[index]) for index in sorted(rejected)]


def _validate_one_by_one(
    items: list[Any], positions: list[int], rejected: dict[int, list[dict[str, Any]]]
) -> tuple[list[tuple[int, IncomingRecord]], list[Rejection]]:
    from pydantic import ValidationError

    valid: list[tuple[int, IncomingRecord]] = []
    for position, item in zip(positions, items, strict=True):
        try:
            valid.append((position, IncomingRecord.model_validate(item)))
        except UnicodeEncodeError:
            rejected[position] = [
                {"loc": [], "msg": "record holds invalid Unicode text", "type": "string_unicode"}
            ]
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False, include_context=False)
            rejected[position] = [_public_error(error, nested=False) for error in errors]
    return valid, [Rejection(index, rejected[index]) for index in sorted(rejected)]


def _errors_by_index(exc: Any, positions: list[int]) -> dict[int, list[dict[str, Any]]]:
    failed: dict[int, list[dict[str, Any]]] = {}
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = error["loc"]
        if not loc or not isinstance(loc[0], int):
            raise exc  # the list itself is invalid, not one of its records
        failed.setdefault(positions[loc[0]], []).append(_public_error(error, nested=True))
    return failed


def _public_error(error: Any, *, nested: bool) -> dict[str, Any]:
    """A record's error without its input value; loc relative to the record (`nested`: the
    error came from validating the list, so its loc starts with the position)."""
    loc: list[str | int] = [_loc_part(part) for part in error["loc"][1 if nested else 0 :]]
    if not loc and error["type"] in _DATA_ERRORS:
        loc = ["data"]
    return {"loc": loc, "msg": str(error["msg"]), "type": str(error["type"])}


def _loc_part(part: Any) -> str | int:
    if isinstance(part, int):
        return part
    from hybrid.log import redact_text

    return redact_text(str(part)[:_MAX_LOC_PART])
