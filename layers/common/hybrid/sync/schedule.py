"""Job schedules: ``every 15m`` / ``every 2h`` / ``every 1d``, or a 5-field cron expression
(minute hour day-of-month month day-of-week, evaluated in UTC, through croniter)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from hybrid.errors import ValidationFailedError

_EVERY = re.compile(r"every\s+([1-9][0-9]{0,4})\s*(m|min|h|d)", re.IGNORECASE)
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400}
MAX_INTERVAL_S = 31 * 86400


class ScheduleError(ValidationFailedError):
    """The schedule is neither ``every N<m|h|d>`` nor a valid 5-field cron expression."""


def _interval_s(schedule: str) -> int | None:
    match = _EVERY.fullmatch(schedule.strip())
    if match is None:
        return None
    seconds = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if seconds > MAX_INTERVAL_S:
        raise ScheduleError("the interval may be at most 31 days")
    return seconds


def validate(schedule: str) -> str:
    """The schedule, normalised; raises ScheduleError."""
    text = " ".join(schedule.split())
    if not text or len(text) > 120:
        raise ScheduleError("a schedule is 'every N<m|h|d>' or a 5-field cron expression")
    if _interval_s(text) is not None:
        return text.lower()
    from croniter import croniter

    if len(text.split()) != 5 or not croniter.is_valid(text):
        raise ScheduleError("a schedule is 'every N<m|h|d>' or a 5-field cron expression")
    return text


def next_run(schedule: str, after: datetime) -> datetime:
    """The first run time strictly after `after` (aware, UTC)."""
    interval = _interval_s(schedule)
    if interval is not None:
        return after + timedelta(seconds=interval)
    from croniter import croniter

    result: datetime = croniter(schedule, after).get_next(datetime)
    return result
