"""The composition: stack + invoker + gateway + scheduler + queue + COS events, started and
stopped together, all driven by `serverless.yml`."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from local_emulator import log_json
from local_emulator.cos_events import CosEventDispatcher
from local_emulator.descriptor import (
    CosTrigger,
    ProjectSpec,
    QueueTrigger,
    TimerTrigger,
    load_project,
    resolve_value,
)
from local_emulator.gateway import Gateway, GatewayApp, Router
from local_emulator.invoker import AsyncInvoker, DeadLetter, InvocationResult, Invoker
from local_emulator.local_env import function_environment
from local_emulator.scheduler import Scheduler

_log = logging.getLogger("local_emulator")

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$HYBRID_DATA_DIR`, else `.local/` at the repository root."""
    env = os.environ if environ is None else environ
    return Path(env.get("HYBRID_DATA_DIR") or REPO_ROOT / ".local")


def layer_paths(project_file: Path) -> list[Path]:
    """The common layer beside the project's descriptor, else the repository's (SCF's /opt)."""
    own = Path(project_file).resolve().parent / "layers" / "common"
    return [own if own.is_dir() else REPO_ROOT / "layers" / "common"]


def start_stack_for(
    data_dir: Path, environ: Mapping[str, str], cos_notify_url: str | None
) -> tuple[Any, Any]:
    """`local_emulator.stack.resolve_stack`, imported only when a stack is wanted."""
    from local_emulator.stack import resolve_stack

    return resolve_stack(data_dir, environ, cos_notify_url=cos_notify_url)


class Emulator:
    """Runs every function of a project locally. Use as a context manager or start()/stop()."""

    def __init__(
        self,
        project_file: Path,
        data_dir: Path | None = None,
        *,
        port: int = 0,
        env_overrides: Mapping[str, str] | None = None,
        start_stack: bool = True,
        retry_delays: tuple[float, float] = (60, 120),
        pool_size: int = 4,
        worker_stdout: int | IO[Any] | None = None,
        scheduled_timers: bool = True,
    ) -> None:
        """`scheduled_timers=False`: cron triggers fire only through `fire_timer` (tests that
        must not race the minute boundary)."""
        self.project_file = Path(project_file).resolve()
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self._port = port
        self._env_overrides = dict(env_overrides or {})
        self._start_stack = start_stack
        self._retry_delays = retry_delays
        self._pool_size = pool_size
        self._worker_stdout = worker_stdout
        self._scheduled_timers = scheduled_timers
        self.project: ProjectSpec = load_project(self.project_file, self._env_overrides)
        self.endpoints: Any = None
        self._stack: Any = None
        self._gateway: Gateway | None = None
        self._invoker: Invoker | None = None
        self._async: AsyncInvoker | None = None
        self._scheduler: Scheduler | None = None
        self._queue: Any = None
        self._redis: Any = None
        self._overrides: dict[str, str] = dict(self._env_overrides)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Emulator:
        if self._invoker is not None:
            raise RuntimeError("the emulator is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        log_json(
            _log,
            logging.INFO,
            "emulator started",
            url=self.url,
            functions=len(self.project.functions),
        )
        return self

    def _start(self) -> None:
        self._gateway = Gateway(port=self._port)
        if self._start_stack:
            environ = {**os.environ, **self._env_overrides}
            notify = f"{self._gateway.url}/_emulator/cos-events"
            self.endpoints, self._stack = start_stack_for(self.data_dir, environ, notify)
        stack_env = self.endpoints.env() if self.endpoints is not None else {}
        self._overrides = {
            **function_environment(self.data_dir, stack_env, os.environ),
            **self._env_overrides,
        }
        self._migrate()
        self.project = load_project(self.project_file, self._overrides)
        envs = {
            key: spec.resolved_environment(self._overrides)
            for key, spec in self.project.functions.items()
        }
        self._invoker = Invoker(
            self.project,
            envs,
            layer_paths=layer_paths(self.project_file),
            pool_size=self._pool_size,
            worker_stdout=self._worker_stdout,
        )
        self._async = AsyncInvoker(
            self._invoker,
            retry_delays=self._retry_delays,
            dead_letter_file=self.data_dir / "dead-letters.jsonl",
        )
        region = self.endpoints.cos.region if self.endpoints is not None else None
        cos = CosEventDispatcher(self.project, self._async, region=region)
        self._gateway.start(GatewayApp(self.project, self._invoker, on_cos_event=cos))
        self._scheduler = Scheduler(self.project, self._async)
        if self._scheduled_timers:
            self._scheduler.start()
        self._start_queue()

    def _migrate(self) -> None:
        """Bring the database schema up to date, as a deploy does before functions run."""
        database_url = resolve_value("${env.DATABASE_URL}", self._overrides)
        if not database_url:
            return
        from sqlalchemy.exc import InterfaceError, OperationalError

        from infra.migrate import upgrade

        # Alembic narrates every plugin it loads at INFO; the emulator logs the outcome itself.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        try:
            upgrade(database_url)
        except (InterfaceError, OperationalError) as exc:
            # An unreachable external database: the functions will answer 503 until it is up;
            # `python -m infra.migrate upgrade` migrates it then.
            log_json(_log, logging.WARNING, "database not migrated", error=type(exc.orig).__name__)
            return
        log_json(_log, logging.INFO, "database migrated")

    def _start_queue(self) -> None:
        if not (self.project.triggers("eventbridge") or self.project.triggers("cmq")):
            return
        redis_url = resolve_value("${env.REDIS_URL}", self._overrides)
        if not redis_url:
            log_json(_log, logging.WARNING, "queue triggers idle: no REDIS_URL")
            return
        import redis

        from local_emulator.queue import QueueConsumer

        self._redis = redis.Redis.from_url(redis_url)
        self._queue = QueueConsumer(self.project, self._require_async(), self._redis)
        self._queue.start()

    def stop(self) -> None:
        """Stop everything started, newest first; safe to call more than once."""
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        if self._queue is not None:
            self._queue.stop()
            self._queue = None
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None
        if self._async is not None:
            self._async.begin_shutdown()
        if self._invoker is not None:
            self._invoker.close()
        if self._async is not None:
            self._async.close()
            self._async = None
        self._invoker = None
        if self._redis is not None:
            self._redis.close()
            self._redis = None
        if self._stack is not None:
            self._stack.stop()
            self._stack = None
        log_json(_log, logging.INFO, "emulator stopped")

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- use --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The gateway's base URL, e.g. `http://127.0.0.1:8787`."""
        if self._gateway is None:
            raise RuntimeError("the emulator is not running")
        return self._gateway.url

    def invoke(self, function_key: str, event: Any, trigger: str = "direct") -> InvocationResult:
        """Invoke synchronously (like the SCF Invoke API with RequestResponse)."""
        if self._invoker is None:
            raise RuntimeError("the emulator is not running")
        return self._invoker.invoke(self.project.function(function_key).key, event, trigger=trigger)

    def fire_timer(self, function_key: str, trigger_name: str) -> Future[InvocationResult]:
        """Fire a timer now; the future resolves after retries (if any) with the last result."""
        if self._scheduler is None:
            raise RuntimeError("the emulator is not running")
        future: Future[InvocationResult] = self._scheduler.fire_now(
            self.project.function(function_key).key, trigger_name
        )
        return future

    def crash(self, function_key: str) -> int:
        """Kill the function's instances in the middle of their calls (SIGKILL); how many."""
        if self._invoker is None:
            raise RuntimeError("the emulator is not running")
        return self._invoker.crash(self.project.function(function_key).key)

    def publish(self, topic: str, body: str, tags: Sequence[str] = ()) -> str:
        """Publish to the local queue as the layer's `LocalQueue` does; returns the message id."""
        if self._redis is None:
            raise RuntimeError("the local queue is not running")
        from local_emulator.queue import publish

        return publish(self._redis, topic, body, tags)

    def dead_letters(self) -> list[DeadLetter]:
        """Asynchronous events that failed every attempt during this run."""
        return self._async.dead_letters() if self._async is not None else []

    def _require_async(self) -> AsyncInvoker:
        if self._async is None:
            raise RuntimeError("the emulator is not running")
        return self._async

    def describe(self) -> list[str]:
        """One line per function: routes, timers, queues and COS triggers."""
        router = Router(self.project)
        lines = []
        for key, spec in self.project.functions.items():
            parts = router.describe(key)
            for trigger in spec.triggers:
                state = "" if trigger.enabled else " (disabled)"
                if isinstance(trigger, TimerTrigger):
                    parts.append(f"timer {trigger.name} '{trigger.cron.expression}'{state}")
                elif isinstance(trigger, QueueTrigger):
                    parts.append(f"{trigger.kind} topic {trigger.topic}{state}")
                elif isinstance(trigger, CosTrigger):
                    parts.append(f"cos {trigger.bucket}/{trigger.prefix}*{trigger.suffix}{state}")
            lines.append(f"{spec.name} ({key}): " + ("; ".join(parts) or "direct invoke only"))
        return lines
