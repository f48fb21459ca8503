"""Timer trigger events (SCF and CloudBase share the shape)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from hybrid.events import (
    MalformedEventError,
    _FrozenRecord,
    _opt_str,
    _req_str,
    _timestamp,
)


class TimerEvent(_FrozenRecord):
    """One timer tick. ``time`` is aware UTC; ``message`` is the trigger's custom argument."""

    _field_names = ("trigger_name", "time", "message")
    __slots__ = _field_names

    trigger_name: str
    time: datetime
    message: str

    def __init__(self, trigger_name: str, time: datetime, message: str = "") -> None:
        init = object.__setattr__
        init(self, "trigger_name", trigger_name)
        init(self, "time", time)
        init(self, "message", message)


def is_timer_event(raw: object) -> bool:
    if not isinstance(raw, Mapping):
        return False
    kind = raw.get("Type")
    return isinstance(kind, str) and kind.lower() == "timer"


def parse_timer_event(raw: object) -> TimerEvent:
    """Read a timer event; raises :class:`MalformedEventError` only."""
    if not isinstance(raw, Mapping) or not is_timer_event(raw):
        raise MalformedEventError("not a timer event: Type must be 'Timer'")
    time = _timestamp(_req_str(raw.get("Time"), "Time"), "Time", epoch_divisor=1)
    if time is None:
        raise MalformedEventError("Time is missing")
    return TimerEvent(
        trigger_name=_req_str(raw.get("TriggerName"), "TriggerName"),
        time=time,
        message=_opt_str(raw.get("Message"), "Message") or "",
    )
