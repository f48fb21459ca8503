"""Turns a router and event jobs into an SCF handler `main_handler(event, context)`.

Per invocation: a fresh logging context (request id, function, cold start), the event parsed
defensively into a typed model, errors mapped to problem+json for HTTP (never a stack trace or a
secret) and re-raised for asynchronous triggers so that the platform retries them. Nothing of
one invocation is left on the module for the next.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from hybrid import log
from hybrid.config import ConfigError, FunctionSettings, load_settings
from hybrid.events import (
    EventError,
    detect_trigger,
)
from hybrid.events.context import InvocationContext
from hybrid.events.http import HttpEventKind, parse_http_event, render_http_response
from hybrid.http.problem import (
    BadRequestError,
    InternalServerError,
    ProblemError,
    ServiceUnavailableError,
    UnprocessableError,
)
from hybrid.http.request import Request
from hybrid.http.response import Response, dump_json
from hybrid.http.router import Router

SettingsT = TypeVar("SettingsT", bound=FunctionSettings)
ErrorMapper = Callable[[Exception], ProblemError]
JobHandler = Callable[[Any, Any, InvocationContext], Any]

PROBLEM_HEADERS = {"Content-Type": "application/problem+json"}


def infrastructure_error_map() -> dict[type[Exception], ErrorMapper]:
    """Infrastructure failures a caller can retry: 503 with Retry-After."""
    from hybrid.cache import CacheUnavailableError
    from hybrid.db import DatabaseUnavailableError, DataError
    from hybrid.queue.port import QueueUnavailableError
    from hybrid.secrets import SecretError
    from hybrid.storage.port import StorageUnavailableError

    def unavailable(what: str) -> ErrorMapper:
        return lambda _exc: ServiceUnavailableError(f"{what} is temporarily unavailable")

    def secret(exc: Exception) -> ProblemError:
        if getattr(exc, "unavailable", False):
            return ServiceUnavailableError("the secrets store is temporarily unavailable")
        return InternalServerError()

    return {
        DataError: lambda _exc: UnprocessableError(
            "a value cannot be stored (a NUL character, or a date or number out of range)"
        ),
        SecretError: secret,
        DatabaseUnavailableError: unavailable("the database"),
        CacheUnavailableError: unavailable("the cache"),
        StorageUnavailableError: unavailable("object storage"),
        QueueUnavailableError: unavailable("the queue"),
    }


class FunctionApp(Generic[SettingsT]):
    """One SCF function: settings, services, an optional HTTP router and event jobs."""

    def __init__(
        self,
        name: str,
        *,
        settings_cls: type[SettingsT],
        services: Callable[[SettingsT], Any],
        router: Router | None = None,
        error_map: Mapping[type[Exception], ErrorMapper] | None = None,
    ) -> None:
        self.name = name
        self.settings_cls = settings_cls
        self.router = router
        self._services = services
        self._error_map = dict(error_map or {})
        self._infra_map: dict[type[Exception], ErrorMapper] | None = None
        self._jobs: dict[str, JobHandler] = {}
        self._cold = True
        log.configure()
        self._logger = log.get_logger("hybrid.handler")

    def on(self, trigger: str, job: JobHandler) -> None:
        """Register the job for `timer`, `queue` or `cos` events.

        The job is called as job(typed_event, services, ctx)."""
        if trigger not in {"timer", "queue", "cos"}:
            raise ValueError(f"unknown trigger {trigger!r}")
        self._jobs[trigger] = job

    def __call__(self, event: Any, context: Any) -> Any:
        ctx = InvocationContext.from_raw(context)
        cold, self._cold = self._cold, False
        log.clear()
        log.bind(request_id=ctx.request_id, function=self.name, cold_start=cold)
        trigger = detect_trigger(event)
        if trigger == "http" or (trigger == "unknown" and self.router is not None):
            return self._handle_http(event, ctx)
        return self._handle_job(trigger, event, ctx)

    # HTTP ---------------------------------------------------------------------------------

    def _handle_http(self, event: Any, ctx: InvocationContext) -> dict[str, Any]:
        started = time.perf_counter()
        kind = HttpEventKind.FUNCTION_URL
        method = path = "-"
        try:
            http_event = parse_http_event(event)
            kind, method, path = http_event.kind, http_event.method, http_event.path
            if self.router is None:
                raise BadRequestError("this function has no HTTP interface")
            request = Request.from_event(http_event, ctx.request_id)
            settings = self._settings()
            response = self.router.dispatch(request, self._services(settings))
        except EventError as exc:
            response = self._problem(BadRequestError(f"malformed HTTP event: {exc}"), ctx)
        except ProblemError as exc:
            response = self._problem(exc, ctx)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a problem response
            response = self._problem(self._map_unexpected(exc), ctx)
        response = response.with_headers({"X-Request-Id": ctx.request_id})
        self._logger.info(
            "request handled",
            method=method,
            path=path,
            status=response.status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return render_http_response(kind, response.status, dict(response.headers), response.body)

    def _problem(self, error: ProblemError, ctx: InvocationContext) -> Response:
        body = dump_json(error.to_dict(ctx.request_id))
        return Response(error.status, body, {**error.headers, **PROBLEM_HEADERS})

    def _map_unexpected(self, exc: Exception) -> ProblemError:
        mapper = self._find_mapper(exc)
        if mapper is not None:
            problem = mapper(exc)
            log_method = self._logger.warning if problem.status >= 500 else self._logger.info
            log_method("request failed", error_type=type(exc).__name__, status=problem.status)
            return problem
        if isinstance(exc, ConfigError):
            self._logger.error("function misconfigured", error=str(exc))
        else:
            self._logger.exception("unhandled error", error_type=type(exc).__name__)
        return InternalServerError()

    def _find_mapper(self, exc: Exception) -> ErrorMapper | None:
        if self._infra_map is None:
            self._infra_map = infrastructure_error_map()
        for table in (self._error_map, self._infra_map):
            for error_type in type(exc).__mro__:
                if error_type in table:
                    return table[error_type]
        return None

    # Asynchronous triggers -------------------------------------------------------------------

    def _handle_job(self, trigger: str, event: Any, ctx: InvocationContext) -> Any:
        job = self._jobs.get(trigger)
        if job is None:
            # Not retryable: the platform would deliver the same unusable event again.
            self._logger.error("unsupported event", trigger=trigger)
            return {"ok": False, "error": f"unsupported event for {self.name}: {trigger}"}
        started = time.perf_counter()
        try:
            typed = _parse_job_event(trigger, event)
        except EventError as exc:
            # Not retryable either: a malformed event stays malformed.
            self._logger.error("malformed event", trigger=trigger, error=str(exc))
            return {"ok": False, "error": f"malformed {trigger} event"}
        try:
            result = job(typed, self._services(self._settings()), ctx)
        except Exception:
            # Re-raised so that SCF retries the invocation (twice) and then dead-letters it.
            self._logger.exception("job failed", trigger=trigger)
            raise
        self._logger.info(
            "job done",
            trigger=trigger,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return result

    def _settings(self) -> SettingsT:
        settings = load_settings(self.settings_cls)
        log.configure(settings.log_level)
        return settings


def _parse_job_event(trigger: str, event: Any) -> Any:
    if trigger == "timer":
        from hybrid.events.timer import parse_timer_event

        return parse_timer_event(event)
    if trigger == "queue":
        from hybrid.events.queue import parse_queue_event

        return parse_queue_event(event)
    from hybrid.events.cos import parse_cos_event

    return parse_cos_event(event)
