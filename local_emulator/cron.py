"""SCF timer cron: `sec min hour day-of-month month day-of-week year`, evaluated in UTC.

croniter was not used: it accepts `?`, `L` and `#`, reads `?` as `*`, and gives up on year
fields a few years ahead, so a small parser with exactly SCF's rules is simpler than patching it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

_UTC = dt.timezone.utc

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_WEEKDAYS = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}

# (field name, low, high, names)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _WEEKDAYS),
    ("year", 1970, 2099, {}),
)
_LAST_YEAR = 2099


class CronError(ValueError):
    """A cron expression SCF would not accept, or one that never fires."""


def _value(text: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not text.isdigit():
        special = sorted(set(upper) & set("?LW#"))
        if special:
            raise CronError(f"{field}: {special[0]!r} is not supported by SCF cron ({text!r})")
        raise CronError(f"{field}: {text!r} is not a number or a name")
    number = int(text)
    if not low <= number <= high:
        raise CronError(f"{field}: {number} is outside {low}-{high}")
    return number


def _parse_field(
    text: str, field: str, low: int, high: int, names: dict[str, int]
) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"{field}: empty list item in {text!r}")
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field}: bad step {step_text!r}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start = _value(first, field, low, high, names)
            end = _value(last, field, low, high, names)
            if start > end:
                raise CronError(f"{field}: range {base!r} runs backwards")
        else:
            start = _value(base, field, low, high, names)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed SCF cron expression; `next_after` gives the next UTC fire time."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    years: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Parse the 7-field form (or the legacy 5-field `min hour dom month dow`)."""
        fields = expression.split()
        if len(fields) == 5:
            fields = ["0", *fields, "*"]
        if len(fields) != 7:
            raise CronError(f"expected 7 fields, got {len(fields)}: {expression!r}")
        sets = [
            _parse_field(text, name, low, high, names)
            for text, (name, low, high, names) in zip(fields, _FIELDS, strict=True)
        ]
        schedule = cls(
            expression=expression,
            seconds=sets[0],
            minutes=sets[1],
            hours=sets[2],
            days=sets[3],
            months=sets[4],
            weekdays=sets[5],
            years=sets[6],
            days_restricted=sets[3] != frozenset(range(1, 32)),
            weekdays_restricted=sets[5] != frozenset(range(7)),
        )
        schedule.next_after(dt.datetime(1970, 1, 1, tzinfo=_UTC))
        return schedule

    def _day_matches(self, day: dt.date) -> bool:
        weekday = (day.weekday() + 1) % 7  # Python: Monday = 0; SCF: Sunday = 0
        if self.days_restricted and self.weekdays_restricted:
            return day.day in self.days or weekday in self.weekdays
        if self.days_restricted:
            return day.day in self.days
        if self.weekdays_restricted:
            return weekday in self.weekdays
        return True

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first fire time strictly after `moment` (naive values are taken as UTC)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_UTC)
        t = moment.astimezone(_UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
        while t.year <= _LAST_YEAR:
            if t.year not in self.years:
                later = [y for y in self.years if y > t.year]
                if not later:
                    break
                t = dt.datetime(min(later), 1, 1, tzinfo=_UTC)
                continue
            if t.month not in self.months:
                later = [m for m in self.months if m > t.month]
                t = (
                    dt.datetime(t.year, min(later), 1, tzinfo=_UTC)
                    if later
                    else dt.datetime(t.year + 1, 1, 1, tzinfo=_UTC)
                )
                continue
            if not self._day_matches(t.date()):
                t = dt.datetime(t.year, t.month, t.day, tzinfo=_UTC) + dt.timedelta(days=1)
                continue
            nxt = _next_in(self.hours, t.hour, t, "hour")
            if nxt is None:
                t = dt.datetime(t.year, t.month, t.day, tzinfo=_UTC) + dt.timedelta(days=1)
                continue
            if nxt != t:
                t = nxt
                continue
            nxt = _next_in(self.minutes, t.minute, t, "minute")
            if nxt is None:
                t = t.replace(minute=0, second=0) + dt.timedelta(hours=1)
                continue
            if nxt != t:
                t = nxt
                continue
            nxt = _next_in(self.seconds, t.second, t, "second")
            if nxt is None:
                t = t.replace(second=0) + dt.timedelta(minutes=1)
                continue
            return nxt
        raise CronError(f"{self.expression!r} never fires after {moment.isoformat()}")


def _next_in(
    allowed: frozenset[int], current: int, t: dt.datetime, unit: str
) -> dt.datetime | None:
    """`t` moved to the first allowed value of `unit` at or after `current`, lower units reset."""
    if current in allowed:
        return t
    later = [v for v in allowed if v > current]
    if not later:
        return None
    if unit == "hour":
        return t.replace(hour=min(later), minute=0, second=0)
    if unit == "minute":
        return t.replace(minute=min(later), second=0)
    return t.replace(second=min(later))
