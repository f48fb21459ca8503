"""Read the project's `serverless.yml` (Serverless Components, multi-scf) into typed specs."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from local_emulator.cron import CronError, CronSchedule

DEFAULT_REGION = "ap-guangzhou"
DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT_S = 3

_ENV_REF = re.compile(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)\}")
_COS_HOST = re.compile(r"^(?P<bucket>.+?)\.cos\.(?P<region>[a-z0-9-]+)\.myqcloud\.com$")
_APPID_SUFFIX = re.compile(r"^(?P<short>.+)-(?P<appid>\d+)$")


class DescriptorError(ValueError):
    """The descriptor is not something the emulator (or SCF) would run."""


def resolve_value(
    value: str, overrides: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> str:
    """Substitute `${env.NAME}`: overrides first, then the environment, else ""."""
    env = os.environ if environ is None else environ

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in overrides:
            return overrides[name]
        return env.get(name, "")

    return _ENV_REF.sub(lookup, value)


def referenced_env_names(value: str) -> list[str]:
    """The `${env.NAME}` names a raw value refers to."""
    return _ENV_REF.findall(value)


@dataclass(frozen=True)
class Trigger:
    """Base of every trigger; `function` is the function key in `inputs.functions`."""

    kind: str
    function: str
    name: str
    enabled: bool


@dataclass(frozen=True)
class HttpTrigger(Trigger):
    """SCF Function URL; `paths` are the path prefixes the gateway routes to the function."""

    paths: tuple[str, ...]


@dataclass(frozen=True)
class ApigwTrigger(Trigger):
    """One legacy API Gateway API: a path template (`/items/{id}`) and a method (or ANY)."""

    path: str
    method: str
    integrated_response: bool
    query_params: tuple[str, ...] = ()


@dataclass(frozen=True)
class TimerTrigger(Trigger):
    cron: CronSchedule
    argument: str


@dataclass(frozen=True)
class CosTrigger(Trigger):
    """COS bucket notification; `bucket` is `<short>-<appid>` or a bare short name."""

    bucket: str
    prefix: str
    suffix: str
    events: tuple[str, ...]

    @property
    def bucket_short(self) -> str:
        match = _APPID_SUFFIX.match(self.bucket)
        return match.group("short") if match else self.bucket

    @property
    def bucket_appid(self) -> str | None:
        match = _APPID_SUFFIX.match(self.bucket)
        return match.group("appid") if match else None


@dataclass(frozen=True)
class QueueTrigger(Trigger):
    """`eventbridge` (TDMQ through EventBridge) or legacy `cmq` topic subscription."""

    topic: str
    subscription: str


@dataclass(frozen=True)
class FunctionSpec:
    key: str
    name: str
    src: Path
    handler: str
    runtime: str
    memory_mb: int
    timeout_s: int
    environment: dict[str, str]
    triggers: list[Trigger] = field(default_factory=list)

    def resolved_environment(
        self, overrides: Mapping[str, str], environ: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        return {k: resolve_value(v, overrides, environ) for k, v in self.environment.items()}

    def triggers_of(self, kind: str) -> list[Any]:
        return [t for t in self.triggers if t.kind == kind]


@dataclass(frozen=True)
class ProjectSpec:
    path: Path
    app: str
    region: str
    namespace: str
    functions: dict[str, FunctionSpec]

    def function(self, key_or_name: str) -> FunctionSpec:
        """Look a function up by key (`push_ingest`) or SCF name (`push-ingest`)."""
        if key_or_name in self.functions:
            return self.functions[key_or_name]
        for spec in self.functions.values():
            if spec.name == key_or_name:
                return spec
        raise KeyError(f"no function named {key_or_name!r} in {self.path.name}")

    def triggers(self, kind: str) -> list[Any]:
        return [t for spec in self.functions.values() for t in spec.triggers if t.kind == kind]


def load_project(
    path: Path, overrides: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None
) -> ProjectSpec:
    """Load and validate a multi-scf `serverless.yml`.

    `${env.X}` in the region and in trigger parameters are resolved with `overrides`, then
    `environ`; function environments stay raw (see `FunctionSpec.resolved_environment`).
    """
    path = Path(path).resolve()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DescriptorError(f"cannot read {path}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), dict):
        raise DescriptorError(f"{path}: expected a mapping with `inputs`")
    inputs: dict[str, Any] = document["inputs"]
    raw_functions = inputs.get("functions")
    if not isinstance(raw_functions, dict) or not raw_functions:
        raise DescriptorError(f"{path}: `inputs.functions` must be a non-empty mapping")

    region = resolve_value(str(inputs.get("region") or ""), overrides or {}, environ)
    functions = {
        key: _function(path.parent, inputs, str(key), body or {})
        for key, body in raw_functions.items()
    }
    raw_triggers = _resolve_tree(inputs.get("triggers") or [], overrides or {}, environ)
    triggers = _triggers(raw_triggers, functions)
    _check_routes(triggers)
    for trigger in triggers:
        functions[trigger.function].triggers.append(trigger)
    return ProjectSpec(
        path=path,
        app=str(document.get("app") or ""),
        region=region or DEFAULT_REGION,
        namespace=str(inputs.get("namespace") or "default"),
        functions=functions,
    )


def _resolve_tree(
    value: Any, overrides: Mapping[str, str], environ: Mapping[str, str] | None
) -> Any:
    if isinstance(value, str):
        return resolve_value(value, overrides, environ)
    if isinstance(value, list):
        return [_resolve_tree(v, overrides, environ) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_tree(v, overrides, environ) for k, v in value.items()}
    return value


def _environment(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, dict) and isinstance(raw.get("variables"), dict):  # `component: scf` form
        return {str(k): "" if v is None else str(v) for k, v in raw["variables"].items()}
    if isinstance(raw, list):
        env: dict[str, str] = {}
        for item in raw:
            if not isinstance(item, dict) or "key" not in item:
                raise DescriptorError(f"{where}: environment entries need `key` and `value`")
            value = item.get("value")
            env[str(item["key"])] = "" if value is None else str(value)
        return env
    raise DescriptorError(f"{where}: unsupported environment format")


def _src(base: Path, raw: Any) -> Path | None:
    if isinstance(raw, dict):
        raw = raw.get("src")
    return (base / str(raw)).resolve() if raw else None


def _function(base: Path, inputs: dict[str, Any], key: str, body: dict[str, Any]) -> FunctionSpec:
    where = f"function {key!r}"
    if not isinstance(body, dict):
        raise DescriptorError(f"{where}: expected a mapping")
    src = _src(base, body.get("src")) or _src(base, inputs.get("src")) or base
    environment = _environment(inputs.get("environments"), "inputs")
    environment.update(_environment(body.get("environments", body.get("environment")), where))
    handler = str(body.get("handler") or inputs.get("handler") or "index.main_handler")
    if "." not in handler:
        raise DescriptorError(f"{where}: handler {handler!r} must look like `module.function`")
    try:
        memory = int(body.get("memorySize") or inputs.get("memorySize") or DEFAULT_MEMORY_MB)
        timeout = int(body.get("timeout") or inputs.get("timeout") or DEFAULT_TIMEOUT_S)
    except (TypeError, ValueError) as exc:
        raise DescriptorError(f"{where}: memorySize and timeout must be integers") from exc
    if not 1 <= timeout <= 900:
        raise DescriptorError(f"{where}: timeout {timeout} is outside 1-900 s")
    return FunctionSpec(
        key=key,
        name=str(body.get("name") or key.replace("_", "-")),
        src=src,
        handler=handler,
        runtime=str(body.get("runtime") or inputs.get("runtime") or "Python3.10"),
        memory_mb=memory,
        timeout_s=timeout,
        environment=environment,
    )


def _enabled(params: dict[str, Any]) -> bool:
    value = params.get("enable", False)  # multi-scf: asynchronous triggers are off unless enabled
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def _triggers(raw: Any, functions: dict[str, FunctionSpec]) -> list[Trigger]:
    if not isinstance(raw, list):
        raise DescriptorError("`inputs.triggers` must be a list")
    triggers: list[Trigger] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise DescriptorError(f"trigger #{index}: expected a mapping")
        kind = str(item.get("type") or "")
        params = item.get("parameters") or {}
        if not isinstance(params, dict):
            raise DescriptorError(f"trigger #{index} ({kind}): `parameters` must be a mapping")
        function = item.get("function")
        where = f"trigger #{index} ({kind})"
        if kind == "apigw":
            triggers.extend(_apigw(where, function, params, functions))
            continue
        if function not in functions:
            raise DescriptorError(f"{where}: unknown function {function!r}")
        parse = _PARSERS.get(kind)
        if parse is None:
            raise DescriptorError(f"{where}: the emulator does not support trigger type {kind!r}")
        triggers.append(parse(where, str(function), params))
    return triggers


def _http(where: str, function: str, params: dict[str, Any]) -> Trigger:
    paths = params.get("paths")
    if not isinstance(paths, list) or not paths:
        raise DescriptorError(f"{where}: `parameters.paths` must list the path prefixes")
    normalised = []
    for prefix in paths:
        prefix = str(prefix)
        if not prefix.startswith("/"):
            raise DescriptorError(f"{where}: path prefix {prefix!r} must start with '/'")
        normalised.append(prefix.rstrip("/") or "/")
    name = str(params.get("name") or f"{function}-url")
    return HttpTrigger("http", function, name, True, tuple(normalised))


def _apigw(
    where: str, default_function: Any, params: dict[str, Any], functions: dict[str, FunctionSpec]
) -> list[Trigger]:
    apis = params.get("apis")
    if not isinstance(apis, list) or not apis:
        raise DescriptorError(f"{where}: `parameters.apis` must list the APIs")
    triggers: list[Trigger] = []
    for api in apis:
        if not isinstance(api, dict) or not str(api.get("path") or "").startswith("/"):
            raise DescriptorError(f"{where}: every API needs a `path` starting with '/'")
        target = api.get("function")
        integrated = True
        if isinstance(target, dict):
            integrated = bool(target.get("isIntegratedResponse", True))
            target = target.get("functionName") or default_function
        if target not in functions:
            raise DescriptorError(f"{where}: API {api['path']!r}: unknown function {target!r}")
        query = tuple(
            str(p["name"])
            for p in api.get("param") or []
            if isinstance(p, dict)
            and str(p.get("position", "")).upper() == "QUERY"
            and p.get("name")
        )
        name = str(params.get("serviceName") or params.get("name") or "apigw")
        method = str(api.get("method") or "ANY").upper()
        triggers.append(
            ApigwTrigger("apigw", str(target), name, True, api["path"], method, integrated, query)
        )
    return triggers


def _timer(where: str, function: str, params: dict[str, Any]) -> Trigger:
    name = params.get("name")
    if not name:
        raise DescriptorError(f"{where}: timer needs a `name`")
    try:
        cron = CronSchedule.parse(str(params.get("cronExpression") or ""))
    except CronError as exc:
        raise DescriptorError(f"{where} {name!r}: bad cronExpression: {exc}") from exc
    argument = params.get("argument")
    if argument is None:
        argument = ""
    elif not isinstance(argument, str):
        raise DescriptorError(f"{where} {name!r}: `argument` must be a string")
    return TimerTrigger("timer", function, str(name), _enabled(params), cron, argument)


def _cos(where: str, function: str, params: dict[str, Any]) -> Trigger:
    bucket = str(params.get("bucket") or "")
    host = _COS_HOST.match(bucket)
    if host:
        bucket = host.group("bucket")
    if "bucket" not in params:
        raise DescriptorError(f"{where}: cos trigger needs a `bucket`")
    events = params.get("events") or "cos:ObjectCreated:*"
    if isinstance(events, str):
        events = [e.strip() for e in events.split(",")]
    filt = params.get("filter") or {}
    return CosTrigger(
        "cos",
        function,
        str(params.get("name") or bucket),
        _enabled(params),
        bucket,
        str(filt.get("prefix") or ""),
        str(filt.get("suffix") or ""),
        tuple(str(e) for e in events if e),
    )


def _eventbridge(where: str, function: str, params: dict[str, Any]) -> Trigger:
    topic = params.get("topic")
    if not topic:
        raise DescriptorError(f"{where}: eventbridge trigger needs a `topic`")
    name = str(params.get("name") or f"{function}-{topic}")
    return QueueTrigger("eventbridge", function, name, _enabled(params), str(topic), name)


def _cmq(where: str, function: str, params: dict[str, Any]) -> Trigger:
    topic = params.get("name")
    if not topic:
        raise DescriptorError(f"{where}: cmq trigger needs `name` (the topic)")
    subscription = f"{function.replace('_', '-')}-{topic}"
    return QueueTrigger("cmq", function, str(topic), _enabled(params), str(topic), subscription)


_PARSERS = {
    "http": _http,
    "timer": _timer,
    "cos": _cos,
    "eventbridge": _eventbridge,
    "cmq": _cmq,
}


def _check_routes(triggers: list[Trigger]) -> None:
    prefixes: dict[str, str] = {}
    apis: dict[tuple[str, str], str] = {}
    timers: set[tuple[str, str]] = set()
    for trigger in triggers:
        if isinstance(trigger, HttpTrigger):
            for prefix in trigger.paths:
                if prefix in prefixes:
                    raise DescriptorError(
                        f"path prefix {prefix!r} is declared by both "
                        f"{prefixes[prefix]!r} and {trigger.function!r}"
                    )
                prefixes[prefix] = trigger.function
        elif isinstance(trigger, ApigwTrigger):
            route = (trigger.method, re.sub(r"\{[^}]*\}", "{}", trigger.path))
            if route in apis:
                raise DescriptorError(
                    f"API {trigger.method} {trigger.path!r} is declared twice "
                    f"({apis[route]!r} and {trigger.function!r})"
                )
            apis[route] = trigger.function
        elif isinstance(trigger, TimerTrigger):
            if (trigger.function, trigger.name) in timers:
                raise DescriptorError(
                    f"timer {trigger.name!r} is declared twice for {trigger.function!r}"
                )
            timers.add((trigger.function, trigger.name))
