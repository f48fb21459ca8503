"""Typed, read-only views of the platform's trigger events (SCF and CloudBase).

Only the standard library is used here, and nothing heavy at import time (no ``typing``,
``dataclasses``, ``re`` or ``json``): every function imports this package on a cold start.
Each ``parse_*`` function raises :class:`MalformedEventError` for any input it cannot read and
never any other exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from types import MappingProxyType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal


class EventError(Exception):
    """Base class of the errors raised by :mod:`hybrid.events`."""


class MalformedEventError(EventError):
    """The event does not have the shape of the trigger it was parsed as."""


class _FrozenRecord:
    """An immutable value object: a frozen dataclass without importing ``dataclasses``.

    Subclasses list their fields in ``_field_names`` (also their ``__slots__``) and accept them
    positionally, in that order, in ``__init__``, which sets them with ``object.__setattr__``.
    """

    __slots__ = ()
    _field_names: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._field_names)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: {type(self).__name__} is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: {type(self).__name__} is frozen")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _FrozenRecord) or type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={_plain(getattr(self, name))!r}" for name in self._field_names)
        return f"{type(self).__name__}({fields})"

    def __reduce__(self) -> tuple[type[_FrozenRecord], tuple[object, ...]]:
        return (type(self), tuple(_plain(value) for value in self._values()))


def _plain(value: object) -> object:
    return dict(value) if isinstance(value, MappingProxyType) else value


def _readonly(values: Mapping[str, object]) -> Mapping[str, Any]:
    return MappingProxyType(dict(values))


# Field readers shared by the trigger modules. `where` names the field in error messages.


def _object(value: object, where: str) -> Mapping[str, Any]:
    """A JSON object; a missing (None) value reads as empty."""
    if value is None:
        return _EMPTY
    if not isinstance(value, Mapping):
        raise MalformedEventError(f"{where} must be an object, got {type(value).__name__}")
    return value


def _opt_str(value: object, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise MalformedEventError(f"{where} must be a string, got {type(value).__name__}")


def _req_str(value: object, where: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        raise MalformedEventError(f"{where} is missing")
    raise MalformedEventError(f"{where} must be a string, got {type(value).__name__}")


def _opt_id(value: object, where: str) -> str | None:
    """An identifier the platform sends as a string in some events and a number in others."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise MalformedEventError(f"{where} must be a string or an integer")


def _opt_int(value: object, where: str) -> int | None:
    """A non-negative integer, sent as a number or a decimal string."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _is_digits(value.strip()):
        try:
            number = int(value.strip())
        except ValueError as exc:  # longer than int() accepts
            raise MalformedEventError(f"{where} is not a usable integer") from exc
    else:
        raise MalformedEventError(f"{where} must be an integer")
    if number < 0:
        raise MalformedEventError(f"{where} must not be negative")
    return number


def _is_digits(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts superscripts and other scripts)."""
    return bool(text) and text.isascii() and text.isdigit()


def _timestamp(value: object, where: str, *, epoch_divisor: int) -> datetime | None:
    """An aware UTC datetime from RFC 3339 text or an epoch number (or string of digits).

    ``epoch_divisor`` says what an epoch number counts: 1 for seconds, 1000 for milliseconds.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if _is_digits(text):
            return _from_epoch(text, where, epoch_divisor)
        parsed = _parse_rfc3339(text)
        if parsed is None:
            raise MalformedEventError(f"{where} is not an RFC 3339 time or epoch: {value[:40]!r}")
        return parsed
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _from_epoch(value, where, epoch_divisor)
    raise MalformedEventError(f"{where} must be a time string or an epoch number")


def _from_epoch(value: str | float, where: str, divisor: int) -> datetime:
    try:
        seconds = (int(value) if isinstance(value, str) else value) / divisor
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (ValueError, OverflowError, OSError) as exc:
        raise MalformedEventError(f"{where} is out of range") from exc


def _parse_rfc3339(text: str) -> datetime | None:
    """``YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]`` as aware UTC, or None.

    Python 3.10's ``fromisoformat`` rejects ``Z`` and fractions that are not 3 or 6 digits long,
    hence this parser. A time without an offset is taken as UTC, as Tencent's events use UTC.
    """
    if (
        len(text) < 19
        or text[4] != "-"
        or text[7] != "-"
        or text[10] not in "Tt "
        or text[13] != ":"
        or text[16] != ":"
    ):
        return None
    parts = (text[0:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19])
    if not all(_is_digits(part) for part in parts):
        return None
    year, month, day, hour, minute, second = (int(part) for part in parts)
    rest = text[19:]
    microsecond = 0
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end] in "0123456789":
            end += 1
        if end == 1:
            return None
        microsecond = int(rest[1:end][:6].ljust(6, "0"))
        rest = rest[end:]
    offset = _utc_offset(rest)
    if offset is None:
        return None
    try:
        moment = datetime(year, month, day, hour, minute, second, microsecond, tzinfo=offset)
        return moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None


def _utc_offset(text: str) -> timezone | None:
    if text in ("", "Z", "z"):
        return timezone.utc
    if len(text) == 6 and text[3] == ":":
        text = text[:3] + text[4:]
    if len(text) != 5 or text[0] not in "+-" or not _is_digits(text[1:]):
        return None
    hours, minutes = int(text[1:3]), int(text[3:5])
    if hours > 23 or minutes > 59:
        return None
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


_EMPTY: Mapping[str, Any] = MappingProxyType({})

# The trigger modules import the helpers above, so they are imported last.
from hybrid.events.context import InvocationContext  # noqa: E402
from hybrid.events.cos import CosObjectEvent, is_cos_event, parse_cos_event  # noqa: E402
from hybrid.events.http import (  # noqa: E402
    HttpEvent,
    HttpEventKind,
    is_http_event,
    parse_http_event,
    render_http_response,
)
from hybrid.events.queue import QueueMessage, is_queue_event, parse_queue_event  # noqa: E402
from hybrid.events.timer import TimerEvent, is_timer_event, parse_timer_event  # noqa: E402


def detect_trigger(raw: object) -> Literal["http", "timer", "queue", "cos", "unknown"]:
    """Which trigger sent ``raw``, judged from its shape alone; never raises."""
    if is_http_event(raw):
        return "http"
    if is_timer_event(raw):
        return "timer"
    if is_queue_event(raw):
        return "queue"
    if is_cos_event(raw):
        return "cos"
    return "unknown"


__all__ = [
    "CosObjectEvent",
    "EventError",
    "HttpEvent",
    "HttpEventKind",
    "InvocationContext",
    "MalformedEventError",
    "QueueMessage",
    "TimerEvent",
    "detect_trigger",
    "is_cos_event",
    "is_http_event",
    "is_queue_event",
    "is_timer_event",
    "parse_cos_event",
    "parse_http_event",
    "parse_queue_event",
    "parse_timer_event",
    "render_http_response",
]
