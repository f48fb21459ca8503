"""Invoke functions like SCF: a warm worker pool per function, time limits, SCF error bodies.

`Invoker` is the synchronous path (HTTP, direct); `AsyncInvoker` adds SCF's asynchronous rule
(timer, COS, queue): run in the background, retry twice on error, then dead-letter.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from local_emulator import LOCAL_APPID, LOCAL_UIN, log_json
from local_emulator.descriptor import FunctionSpec, ProjectSpec
from local_emulator.worker import (
    Worker,
    WorkerExitedError,
    WorkerInitError,
    WorkerTimeoutError,
)

SYNC_EVENT_LIMIT = 6 * 1024 * 1024
ASYNC_EVENT_LIMIT = 128 * 1024
RESPONSE_LIMIT = 6 * 1024 * 1024
INIT_TIMEOUT_S = 65.0
DEFAULT_POOL_SIZE = 4
# Host variables a process needs to run at all; nothing else of the emulator's environment leaks in.
_HOST_VARS = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")

_log = logging.getLogger("local_emulator.invoker")


@dataclass(frozen=True)
class InvocationResult:
    """`status_code` is SCF's (200, 430, 433, ...); `error` is the SCF error body on failure."""

    status_code: int
    payload: Any
    error: dict[str, Any] | None
    duration_ms: float
    request_id: str
    cold_start: bool

    @property
    def ok(self) -> bool:
        return self.status_code == 200

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def scf_error(status: int, message: str, request_id: str, stack_trace: str = "") -> dict[str, Any]:
    return {
        "errorCode": -1,
        "errorMessage": message,
        "requestId": request_id,
        "stackTrace": stack_trace,
        "statusCode": status,
    }


def runtime_environment(
    spec: FunctionSpec, project: ProjectSpec, function_env: Mapping[str, str]
) -> dict[str, str]:
    """The process environment of an SCF instance: the function's variables plus SCF's own."""
    env = {name: os.environ[name] for name in _HOST_VARS if name in os.environ}
    env.update(function_env)
    env.update(
        {
            "SCF_FUNCTIONNAME": spec.name,
            "SCF_NAMESPACE": project.namespace,
            "SCF_FUNCTIONVERSION": "$LATEST",
            "SCF_RUNTIME": spec.runtime,
            "TENCENTCLOUD_REGION": project.region,
            "TENCENTCLOUD_RUNENV": "SCF",
            "TENCENTCLOUD_APPID": LOCAL_APPID,
            "TENCENTCLOUD_UIN": LOCAL_UIN,
            "TENCENTCLOUD_TZ": "UTC",
            "USER_CODE_ROOT": str(spec.src),
            "PYTHONDONTWRITEBYTECODE": "x",
        }
    )
    return env


def build_context(
    spec: FunctionSpec, project: ProjectSpec, env: Mapping[str, str], request_id: str
) -> dict[str, Any]:
    """A fresh SCF context dict (PLATFORM-NOTES §1.3); `environment` is a JSON string."""
    function_env = {k: v for k, v in env.items() if k not in _HOST_VARS}
    return {
        "memory_limit_in_mb": spec.memory_mb,
        "time_limit_in_ms": spec.timeout_s * 1000,
        "request_id": request_id,
        "environment": json.dumps(function_env),
        "environ": ";".join(f"{k}={v}" for k, v in function_env.items()),
        "function_version": "$LATEST",
        "function_name": spec.name,
        "namespace": project.namespace,
        "tencentcloud_region": project.region,
        "tencentcloud_appid": LOCAL_APPID,
        "tencentcloud_uin": LOCAL_UIN,
    }


class _Pool:
    """Warm workers of one function; at most `size` run at once, further calls wait."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.idle: list[Worker] = []
        self.busy: set[Worker] = set()
        self.cond = threading.Condition()


class Invoker:
    """Runs invocations in per-function warm worker subprocesses."""

    def __init__(
        self,
        project: ProjectSpec,
        function_envs: Mapping[str, Mapping[str, str]],
        *,
        layer_paths: Sequence[Path],
        pool_size: int = DEFAULT_POOL_SIZE,
        worker_stdout: int | IO[Any] | None = None,
        init_timeout_s: float = INIT_TIMEOUT_S,
    ) -> None:
        self.project = project
        self._envs = {
            key: runtime_environment(spec, project, function_envs.get(key, {}))
            for key, spec in project.functions.items()
        }
        self._layer_paths = list(layer_paths)
        self._worker_stdout = worker_stdout
        self._init_timeout_s = init_timeout_s
        self._pools = {key: _Pool(pool_size) for key in project.functions}
        self._closed = False

    def invoke(
        self, function_key: str, event: Any, *, trigger: str, request_id: str | None = None
    ) -> InvocationResult:
        """Run one invocation synchronously and log one JSON line about it."""
        spec = self.project.functions[function_key]
        request_id = request_id or str(uuid.uuid4())
        started = time.monotonic()
        status, payload, error, cold = self._run(spec, event, trigger, request_id)
        result = InvocationResult(
            status_code=status,
            payload=payload,
            error=error,
            duration_ms=round((time.monotonic() - started) * 1000, 3),
            request_id=request_id,
            cold_start=cold,
        )
        fields: dict[str, Any] = {
            "function": spec.name,
            "trigger": trigger,
            "request_id": request_id,
            "duration_ms": result.duration_ms,
            "status": status,
            "cold_start": cold,
        }
        if error is not None:
            fields["error_message"] = error.get("errorMessage")
            if error.get("stackTrace"):
                fields["stack_trace"] = error["stackTrace"]
        log_json(_log, logging.INFO if result.ok else logging.ERROR, "invocation", **fields)
        return result

    def _run(
        self, spec: FunctionSpec, event: Any, trigger: str, request_id: str
    ) -> tuple[int, Any, dict[str, Any] | None, bool]:
        try:
            size = len(json.dumps(event))
        except (TypeError, ValueError) as exc:
            return 406, None, scf_error(406, f"event is not JSON: {exc}", request_id), False
        if size > SYNC_EVENT_LIMIT:
            return 406, None, scf_error(406, "RequestTooLarge: event over 6 MB", request_id), False
        pool = self._pools[spec.key]
        try:
            worker, cold = self._acquire(spec, pool)
        except WorkerInitError as exc:
            error = {
                **scf_error(500, "init failed", request_id),
                **exc.error,
                "requestId": request_id,
            }
            return int(error["statusCode"]), None, error, True
        except WorkerTimeoutError:
            return 450, None, scf_error(450, "InitContainerTimeout", request_id), True
        except WorkerExitedError as exc:
            message = f"user process exited during init (code {exc.returncode})"
            return 439, None, scf_error(439, message, request_id), True
        except (RuntimeError, OSError) as exc:  # shutting down, or the process cannot spawn
            return 500, None, scf_error(500, str(exc), request_id), False
        context = build_context(spec, self.project, self._envs[spec.key], request_id)
        try:
            reply = worker.call(event, context, trigger, spec.timeout_s)
        except WorkerTimeoutError:
            self._discard(pool, worker)
            message = f"Invoking task timed out after {spec.timeout_s} seconds"
            return 433, None, scf_error(433, message, request_id), cold
        except WorkerExitedError as exc:
            self._discard(pool, worker)
            message = f"user process exited (code {exc.returncode})"
            return 439, None, scf_error(439, message, request_id), cold
        self._release(pool, worker)
        if not reply.get("ok"):
            error = {**reply["error"], "requestId": request_id}
            return int(error.get("statusCode", 430)), None, error, cold
        payload = reply.get("payload")
        if len(json.dumps(payload)) > RESPONSE_LIMIT:
            return 407, None, scf_error(407, "response over 6 MB", request_id), cold
        return 200, payload, None, cold

    def _acquire(self, spec: FunctionSpec, pool: _Pool) -> tuple[Worker, bool]:
        with pool.cond:
            while True:
                if self._closed:
                    raise RuntimeError("the emulator is shutting down")
                if pool.idle:
                    worker = pool.idle.pop()
                    pool.busy.add(worker)
                    return worker, False
                if len(pool.busy) < pool.size:
                    worker = Worker(
                        src=spec.src,
                        handler=spec.handler,
                        layer_paths=self._layer_paths,
                        env=self._envs[spec.key],
                        stdout=self._worker_stdout,
                    )
                    pool.busy.add(worker)
                    break
                pool.cond.wait()
        try:
            worker.start(self._init_timeout_s)
        except BaseException:
            self._discard(pool, worker)
            raise
        return worker, True

    def _release(self, pool: _Pool, worker: Worker) -> None:
        with pool.cond:
            pool.busy.discard(worker)
            if self._closed or not worker.alive:
                worker.kill()
            else:
                pool.idle.append(worker)
            pool.cond.notify()

    def _discard(self, pool: _Pool, worker: Worker) -> None:
        worker.kill()
        with pool.cond:
            pool.busy.discard(worker)
            pool.cond.notify()

    def crash(self, function_key: str) -> int:
        """SIGKILL the function's instances that are running a call (fault injection: the call
        ends with status 439, as when an SCF instance dies); how many were killed."""
        pool = self._pools[function_key]
        with pool.cond:
            running = list(pool.busy)
        for worker in running:
            worker.terminate()  # the calling thread reaps it and discards it from the pool
        return len(running)

    def close(self) -> None:
        """Kill every worker; calls still running end with status 439."""
        self._closed = True
        for pool in self._pools.values():
            with pool.cond:
                for worker in pool.idle:
                    worker.kill()
                pool.idle.clear()
                for worker in pool.busy:
                    worker.terminate()
                pool.cond.notify_all()


@dataclass(frozen=True)
class DeadLetter:
    """An asynchronous event that failed every attempt."""

    function: str
    trigger: str
    event: Any
    error: dict[str, Any] | None
    attempts: int
    request_ids: tuple[str, ...]
    time: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "request_ids": list(self.request_ids)}


DoneCallback = Callable[[InvocationResult, "DeadLetter | None"], None]


class AsyncInvoker:
    """SCF asynchronous invocation: background run, retries after `retry_delays`, dead letter."""

    def __init__(
        self,
        invoker: Invoker,
        *,
        retry_delays: Sequence[float] = (60.0, 120.0),
        dead_letter_file: Path | None = None,
        max_concurrency: int = 16,
    ) -> None:
        self._invoker = invoker
        self._delays = tuple(retry_delays)
        self._file = dead_letter_file
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="scf-async")
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._dead: list[DeadLetter] = []

    def submit(
        self, function_key: str, event: Any, *, trigger: str, on_done: DoneCallback | None = None
    ) -> Future[InvocationResult]:
        """Start it; `on_done` runs after success or dead-lettering, never on shutdown."""
        return self._pool.submit(self._run, function_key, event, trigger, on_done)

    def dead_letters(self) -> list[DeadLetter]:
        with self._lock:
            return list(self._dead)

    def _run(
        self, function_key: str, event: Any, trigger: str, on_done: DoneCallback | None
    ) -> InvocationResult:
        request_ids: list[str] = []
        if len(json.dumps(event)) > ASYNC_EVENT_LIMIT:  # invalid requests are not retried
            rid = str(uuid.uuid4())
            result = InvocationResult(
                406,
                None,
                scf_error(406, "RequestTooLarge: event over 128 KB", rid),
                0.0,
                rid,
                False,
            )
            self._finish(function_key, event, trigger, result, [rid], 0, on_done)
            return result
        attempt = 0
        while True:
            attempt += 1
            result = self._invoker.invoke(function_key, event, trigger=trigger)
            request_ids.append(result.request_id)
            if result.ok or self._stopping.is_set():
                break
            if attempt > len(self._delays):
                break
            delay = self._delays[attempt - 1]
            log_json(
                _log,
                logging.WARNING,
                "async retry scheduled",
                function=function_key,
                trigger=trigger,
                attempt=attempt + 1,
                delay_s=delay,
            )
            if self._stopping.wait(delay):
                break
        if not result.ok and self._stopping.is_set():
            log_json(
                _log,
                logging.WARNING,
                "async invocation abandoned on shutdown",
                function=function_key,
                trigger=trigger,
            )
            return result
        self._finish(function_key, event, trigger, result, request_ids, attempt, on_done)
        return result

    def _finish(
        self,
        function_key: str,
        event: Any,
        trigger: str,
        result: InvocationResult,
        request_ids: list[str],
        attempts: int,
        on_done: DoneCallback | None,
    ) -> None:
        letter = None
        if not result.ok:
            letter = DeadLetter(
                function=function_key,
                trigger=trigger,
                event=event,
                error=result.error,
                attempts=attempts,
                request_ids=tuple(request_ids),
                time=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            )
            with self._lock:
                self._dead.append(letter)
                if self._file is not None:
                    self._file.parent.mkdir(parents=True, exist_ok=True)
                    with self._file.open("a", encoding="utf-8") as fh:
                        fh.write(json.dumps(letter.to_dict()) + "\n")
            log_json(
                _log,
                logging.ERROR,
                "dead letter",
                function=function_key,
                trigger=trigger,
                attempts=attempts,
                status=result.status_code,
                request_ids=request_ids,
            )
        if on_done is not None:
            try:
                on_done(result, letter)
            except Exception:  # noqa: BLE001 - a hook failure must not kill the async thread
                _log.exception(
                    json.dumps({"event": "async completion hook failed", "function": function_key})
                )

    def begin_shutdown(self) -> None:
        """Stop retrying; failures from now on are abandoned rather than dead-lettered."""
        self._stopping.set()

    def close(self) -> None:
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
