"""SCF cron: 7 fields, seconds first, names, 0 = Sunday, OR-ed day fields, UTC, no ? L W #."""

from __future__ import annotations

import datetime as dt

import pytest

from local_emulator.cron import CronError, CronSchedule

UTC = dt.timezone.utc
START = dt.datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)  # a Wednesday


def fire_times(expression: str, count: int, start: dt.datetime = START) -> list[dt.datetime]:
    schedule = CronSchedule.parse(expression)
    times, moment = [], start
    for _ in range(count):
        moment = schedule.next_after(moment)
        times.append(moment)
    return times


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


# Every row of the table in PLATFORM-NOTES §7.
TABLE = [
    ("0 */1 * * * * *", [at(2025, 1, 1, 0, 1), at(2025, 1, 1, 0, 2), at(2025, 1, 1, 0, 3)]),
    ("0 */5 * * * * *", [at(2025, 1, 1, 0, 5), at(2025, 1, 1, 0, 10), at(2025, 1, 1, 0, 15)]),
    (
        "*/5 * * * * * *",
        [at(2025, 1, 1, 0, 0, 5), at(2025, 1, 1, 0, 0, 10), at(2025, 1, 1, 0, 0, 15)],
    ),
    (
        "0 15 10 * * MON-FRI *",
        [
            at(2025, 1, 1, 10, 15),
            at(2025, 1, 2, 10, 15),
            at(2025, 1, 3, 10, 15),
            at(2025, 1, 6, 10, 15),
        ],
    ),
    (
        "0 0 10,14,16 * * * *",
        [at(2025, 1, 1, 10), at(2025, 1, 1, 14), at(2025, 1, 1, 16), at(2025, 1, 2, 10)],
    ),
    (
        "0 */30 9-17 * * * *",
        [at(2025, 1, 1, 9), at(2025, 1, 1, 9, 30), at(2025, 1, 1, 10)],
    ),
    ("0 0 2 1 * * *", [at(2025, 1, 1, 2), at(2025, 2, 1, 2), at(2025, 3, 1, 2)]),
    ("0 0 12 * * WED *", [at(2025, 1, 1, 12), at(2025, 1, 8, 12), at(2025, 1, 15, 12)]),
]


@pytest.mark.parametrize(("expression", "expected"), TABLE)
def test_documented_expressions_fire_at_the_documented_times(
    expression: str, expected: list[dt.datetime]
) -> None:
    assert fire_times(expression, len(expected)) == expected


def test_every_30_minutes_stops_after_17_30_and_resumes_at_9() -> None:
    times = fire_times("0 */30 9-17 * * * *", 19)
    assert times[-2:] == [at(2025, 1, 1, 17, 30), at(2025, 1, 2, 9)]


def test_day_of_week_zero_is_sunday_and_names_match_numbers() -> None:
    assert fire_times("0 0 0 * * 0 *", 1) == [at(2025, 1, 5)]  # Sunday
    assert fire_times("0 0 0 * * SUN *", 1) == fire_times("0 0 0 * * 0 *", 1)
    assert fire_times("0 0 0 * * sat *", 1) == [at(2025, 1, 4)]


def test_month_names_are_accepted() -> None:
    assert fire_times("0 0 0 1 MAR-APR * *", 2) == [at(2025, 3, 1), at(2025, 4, 1)]


def test_day_of_month_and_day_of_week_are_ored_when_both_are_set() -> None:
    # the 1st of the month OR any Monday
    times = fire_times("0 0 0 1 * MON *", 6)
    assert times == [
        at(2025, 1, 6),
        at(2025, 1, 13),
        at(2025, 1, 20),
        at(2025, 1, 27),
        at(2025, 2, 1),
        at(2025, 2, 3),
    ]


def test_year_field_restricts_years_and_ends_the_schedule() -> None:
    schedule = CronSchedule.parse("0 0 0 1 1 * 2030-2031")
    assert schedule.next_after(START) == at(2030, 1, 1)
    assert schedule.next_after(at(2030, 1, 1)) == at(2031, 1, 1)
    with pytest.raises(CronError):
        schedule.next_after(at(2031, 1, 1))


def test_next_after_is_strictly_after_and_naive_means_utc() -> None:
    schedule = CronSchedule.parse("0 0 12 * * * *")
    assert schedule.next_after(at(2025, 1, 1, 12)) == at(2025, 1, 2, 12)
    assert schedule.next_after(dt.datetime(2025, 1, 1, 11, 59, 59, 500000)) == at(2025, 1, 1, 12)
    shanghai = dt.timezone(dt.timedelta(hours=8))
    assert schedule.next_after(dt.datetime(2025, 1, 1, 19, 0, tzinfo=shanghai)) == at(
        2025, 1, 1, 12
    )


def test_legacy_five_field_form_is_accepted() -> None:
    assert fire_times("*/10 * * * *", 2) == [at(2025, 1, 1, 0, 10), at(2025, 1, 1, 0, 20)]


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 0 ? * * *",
        "0 0 0 L * * *",
        "0 0 0 15W * * *",
        "0 0 0 * * 2#1 *",
        "0 0 0 * * 7 *",
        "60 * * * * * *",
        "0 60 * * * * *",
        "0 0 24 * * * *",
        "0 0 0 0 * * *",
        "0 0 0 * 13 * *",
        "0 0 0 * * * 1969",
        "0 0 0 * * * 2100",
        "0 0 0 * * FOO *",
        "0 */0 * * * * *",
        "0 5-1 * * * * *",
        "0 1,,2 * * * * *",
        "0 * * * * *",
        "",
        "0 0 0 31 2 * *",
    ],
)
def test_rejects_what_scf_does_not_accept(expression: str) -> None:
    with pytest.raises(CronError):
        CronSchedule.parse(expression)
