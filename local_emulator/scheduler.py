"""Timer triggers: fire each enabled `timer` of `serverless.yml` on its UTC cron, asynchronously."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from local_emulator import log_json
from local_emulator.cron import CronError
from local_emulator.descriptor import ProjectSpec, TimerTrigger
from local_emulator.invoker import AsyncInvoker, InvocationResult

_log = logging.getLogger("local_emulator.scheduler")
_MAX_CATCH_UP = 100_000  # ticks walked when the loop wakes up very late


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def timer_event(trigger: TimerTrigger, when: dt.datetime) -> dict[str, Any]:
    """The SCF timer event (PLATFORM-NOTES §2.4) for a fire time."""
    return {
        "Type": "Timer",
        "TriggerName": trigger.name,
        "Time": when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Message": trigger.argument,
    }


class Scheduler:
    """Fires timers once per (trigger, fire time); a late tick fires once, older misses never."""

    def __init__(
        self,
        project: ProjectSpec,
        async_invoker: AsyncInvoker,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
        max_sleep_s: float = 0.5,
    ) -> None:
        self._async = async_invoker
        self._clock = clock
        self._max_sleep_s = max_sleep_s
        self._triggers: dict[tuple[str, str], TimerTrigger] = {
            (t.function, t.name): t for t in project.triggers("timer")
        }
        now = clock()
        self._next: dict[tuple[str, str], dt.datetime] = {}
        for key, trigger in self._triggers.items():
            if trigger.enabled:
                self._schedule(key, now)
        self._last_fired: dict[tuple[str, str], dt.datetime] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _schedule(self, key: tuple[str, str], after: dt.datetime) -> None:
        try:
            self._next[key] = self._triggers[key].cron.next_after(after)
        except CronError:
            self._next.pop(key, None)
            log_json(
                _log, logging.INFO, "timer has no more fire times", function=key[0], timer=key[1]
            )

    def next_fire_times(self) -> dict[tuple[str, str], dt.datetime]:
        return dict(self._next)

    def tick(self, now: dt.datetime) -> list[Future[InvocationResult]]:
        """One scheduling pass at `now`: fire every timer that is due."""
        fired = []
        for key, due in sorted(self._next.items()):
            if due > now:
                continue
            trigger = self._triggers[key]
            latest, skipped = due, 0
            while skipped < _MAX_CATCH_UP:
                try:
                    following = trigger.cron.next_after(latest)
                except CronError:
                    break
                if following > now:
                    break
                latest, skipped = following, skipped + 1
            if skipped:
                log_json(
                    _log,
                    logging.WARNING,
                    "timer ticks skipped",
                    function=key[0],
                    timer=key[1],
                    skipped=skipped,
                )
            last = self._last_fired.get(key)
            if last is None or latest > last:
                self._last_fired[key] = latest
                fired.append(self._fire(trigger, latest))
            self._schedule(key, max(latest, now))
        return fired

    def _fire(self, trigger: TimerTrigger, when: dt.datetime) -> Future[InvocationResult]:
        log_json(
            _log,
            logging.INFO,
            "timer fired",
            function=trigger.function,
            timer=trigger.name,
            time=when.isoformat(),
        )
        return self._async.submit(trigger.function, timer_event(trigger, when), trigger="timer")

    def fire_now(self, function_key: str, trigger_name: str) -> Future[InvocationResult]:
        """Fire a timer (enabled or not) immediately, like the console's test button."""
        trigger = self._triggers.get((function_key, trigger_name))
        if trigger is None:
            raise KeyError(f"{function_key} has no timer named {trigger_name!r}")
        return self._fire(trigger, self._clock().replace(microsecond=0))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick(self._clock())
            except Exception:  # noqa: BLE001 - one failing pass must not stop every timer
                _log.exception(json.dumps({"event": "timer pass failed"}))
            upcoming = min(self._next.values(), default=None)
            wait = self._max_sleep_s
            if upcoming is not None:
                wait = max(0.0, min(wait, (upcoming - self._clock()).total_seconds()))
            self._stop.wait(wait)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
