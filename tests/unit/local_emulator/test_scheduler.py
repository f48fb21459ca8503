"""Timer triggers: cron-driven firing, the timer event, once per fire time, async retries."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from local_emulator.descriptor import ProjectSpec
from local_emulator.invoker import AsyncInvoker, InvocationResult, Invoker
from local_emulator.scheduler import Scheduler

UTC = dt.timezone.utc


class RecordingAsync:
    """Stands in for AsyncInvoker: records what would be invoked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []

    def submit(self, function_key: str, event: Any, *, trigger: str) -> Future[InvocationResult]:
        self.calls.append((function_key, event, trigger))
        return Future()


def at(*parts: int, ms: int = 0) -> dt.datetime:
    return dt.datetime(*parts, microsecond=ms * 1000, tzinfo=UTC)


def make(project: ProjectSpec, start: dt.datetime) -> tuple[Scheduler, RecordingAsync]:
    recorder = RecordingAsync()
    return Scheduler(project, recorder, clock=lambda: start), recorder  # type: ignore[arg-type]


def test_due_timer_fires_once_with_the_scf_timer_event(project: ProjectSpec) -> None:
    scheduler, recorder = make(project, at(2025, 1, 1, 0, 0, 0, ms=500))
    assert scheduler.tick(at(2025, 1, 1, 0, 0, 0, ms=900)) == []

    scheduler.tick(at(2025, 1, 1, 0, 0, 1, ms=200))
    scheduler.tick(at(2025, 1, 1, 0, 0, 1, ms=700))  # same second again: nothing new
    assert recorder.calls == [
        (
            "ticker",
            {
                "Type": "Timer",
                "TriggerName": "every-second",
                "Time": "2025-01-01T00:00:01Z",
                "Message": "tick",
            },
            "timer",
        )
    ]


def test_a_late_tick_fires_once_for_the_latest_missed_time(project: ProjectSpec) -> None:
    scheduler, recorder = make(project, at(2025, 1, 1, 0, 0, 0))
    scheduler.tick(at(2025, 1, 1, 0, 0, 7, ms=300))  # seven ticks overdue
    assert [event["Time"] for _, event, _ in recorder.calls] == ["2025-01-01T00:00:07Z"]
    scheduler.tick(at(2025, 1, 1, 0, 0, 7, ms=900))
    assert len(recorder.calls) == 1
    scheduler.tick(at(2025, 1, 1, 0, 0, 8))
    assert [event["Time"] for _, event, _ in recorder.calls][-1] == "2025-01-01T00:00:08Z"


def test_each_timer_keeps_its_own_schedule_and_disabled_ones_never_fire(
    project: ProjectSpec,
) -> None:
    scheduler, recorder = make(project, at(2025, 1, 1, 2, 59, 59))
    assert set(scheduler.next_fire_times()) == {
        ("ticker", "every-second"),
        ("ticker", "nightly-fail"),
    }
    scheduler.tick(at(2025, 1, 1, 3, 0, 0))
    names = sorted(event["TriggerName"] for _, event, _ in recorder.calls)
    assert names == ["every-second", "nightly-fail"]
    assert scheduler.next_fire_times()[("ticker", "nightly-fail")] == at(2025, 1, 2, 3)


def test_fire_now_fires_even_a_disabled_timer(project: ProjectSpec) -> None:
    scheduler, recorder = make(project, at(2025, 1, 1, 12, 0, 0, ms=250))
    scheduler.fire_now("ticker", "disabled")
    assert recorder.calls[0][1]["Time"] == "2025-01-01T12:00:00Z"
    assert recorder.calls[0][1]["TriggerName"] == "disabled"


def test_running_scheduler_invokes_the_timer_function(
    project: ProjectSpec,
    invoker: Invoker,
    out_dir: Path,
    read_records: Callable[[Path], list[Any]],
    wait_for: Callable[..., Any],
) -> None:
    runner = AsyncInvoker(invoker, retry_delays=(0.05, 0.05))
    scheduler = Scheduler(project, runner)
    scheduler.start()
    try:
        records = wait_for(lambda: read_records(out_dir / "ticker.jsonl"), timeout=10)
    finally:
        scheduler.stop()
        runner.close()
    event = records[0]["event"]
    assert event["Type"] == "Timer"
    assert event["TriggerName"] == "every-second"
    assert event["Message"] == "tick"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["Time"])
    assert records[0]["trigger_src"] == "timer"
    times = [r["event"]["Time"] for r in read_records(out_dir / "ticker.jsonl")]
    assert len(times) == len(set(times))


def test_failing_timer_is_retried_twice_then_dead_lettered(
    project: ProjectSpec,
    invoker: Invoker,
    out_dir: Path,
    read_records: Callable[[Path], list[Any]],
) -> None:
    runner = AsyncInvoker(invoker, retry_delays=(0.05, 0.1))
    scheduler = Scheduler(project, runner)
    try:
        result = scheduler.fire_now("ticker", "nightly-fail").result(timeout=30)
    finally:
        runner.close()
    assert result.status_code == 430
    attempts = [r["event"] for r in read_records(out_dir / "ticker.jsonl")]
    assert len(attempts) == 3
    assert {a["TriggerName"] for a in attempts} == {"nightly-fail"}
    assert len({a["Time"] for a in attempts}) == 1  # a retry is the same event
    (letter,) = runner.dead_letters()
    assert (letter.function, letter.trigger, letter.attempts) == ("ticker", "timer", 3)
    assert letter.error is not None
    assert letter.error["statusCode"] == 430
