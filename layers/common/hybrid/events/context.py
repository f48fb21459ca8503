"""The handler's ``context`` argument, read defensively."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from hybrid.events import _FrozenRecord, _readonly

# SCF's longest event-function timeout, assumed when the context does not say.
_MAX_TIME_LIMIT_MS = 900_000


class InvocationContext(_FrozenRecord):
    """What the platform tells the handler about this invocation.

    ``started_monotonic`` is taken when the object is built (at handler entry, in practice),
    so :meth:`remaining_ms` slightly overestimates the time left.
    """

    _field_names = (
        "request_id",
        "function_name",
        "namespace",
        "memory_limit_mb",
        "time_limit_ms",
        "function_version",
        "region",
        "environment",
        "started_monotonic",
    )
    __slots__ = _field_names

    request_id: str
    function_name: str
    namespace: str
    memory_limit_mb: int | None
    time_limit_ms: int | None
    function_version: str
    region: str
    environment: Mapping[str, str]
    started_monotonic: float

    def __init__(
        self,
        request_id: str,
        function_name: str = "",
        namespace: str = "",
        memory_limit_mb: int | None = None,
        time_limit_ms: int | None = None,
        function_version: str = "",
        region: str = "",
        environment: Mapping[str, str] | None = None,
        started_monotonic: float | None = None,
    ) -> None:
        init = object.__setattr__
        init(self, "request_id", request_id)
        init(self, "function_name", function_name)
        init(self, "namespace", namespace)
        init(self, "memory_limit_mb", memory_limit_mb)
        init(self, "time_limit_ms", time_limit_ms)
        init(self, "function_version", function_version)
        init(self, "region", region)
        init(self, "environment", _readonly(environment or {}))
        init(
            self,
            "started_monotonic",
            time.monotonic() if started_monotonic is None else started_monotonic,
        )

    @classmethod
    def from_raw(cls, context: object) -> InvocationContext:
        """Build from SCF's context dict, an object with the same attributes, or None.

        Bad values do not raise: they become defaults, and a missing request id a new uuid4.
        """
        if isinstance(context, InvocationContext):
            return context
        get = _reader(context)
        request_id = _text(get("request_id"))
        if not request_id:
            import uuid

            request_id = str(uuid.uuid4())
        return cls(
            request_id=request_id,
            function_name=_text(get("function_name")),
            namespace=_text(get("namespace")),
            memory_limit_mb=_count(get("memory_limit_in_mb", "memory_limit_mb")),
            time_limit_ms=_count(get("time_limit_in_ms", "time_limit_ms")),
            function_version=_text(get("function_version")),
            region=_text(get("tencentcloud_region", "region")),
            environment=_environment(get("environment")),
        )

    def remaining_ms(self) -> int:
        """Milliseconds left before the platform's time limit (never negative)."""
        limit = self.time_limit_ms if self.time_limit_ms is not None else _MAX_TIME_LIMIT_MS
        elapsed = int((time.monotonic() - self.started_monotonic) * 1000)
        return max(0, limit - elapsed)


def _reader(context: object) -> Callable[..., object]:
    """A lookup over the first of several names that is present and not None."""

    def lookup(*names: str) -> object:
        for name in names:
            try:
                if isinstance(context, Mapping):
                    value = context.get(name)
                elif context is None:
                    value = None
                else:
                    value = getattr(context, name, None)
            except (AttributeError, TypeError, ValueError, KeyError):
                value = None
            if value is not None:
                return value
        return None

    return lookup


def _text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def _count(value: object) -> int | None:
    """A non-negative int from a number or a decimal string; anything else is unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value >= 0 else None
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 18:
            return int(text)
    return None


def _environment(value: object) -> dict[str, str]:
    """``environment`` is a JSON string in SCF's context; a dict is accepted too."""
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return {}
    if not isinstance(value, Mapping):
        return {}
    environment: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(name, str):
            continue
        if isinstance(item, str):
            environment[name] = item
        elif isinstance(item, bool):
            environment[name] = "true" if item else "false"
        elif isinstance(item, (int, float)):
            environment[name] = str(item)
    return environment
