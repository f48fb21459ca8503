"""The deploy descriptors as comparable models.

`serverless.yml` (Serverless Components `multi-scf`, deployed to SCF) and `cloudbaserc.json`
(CloudBase CLI, deployed to a CloudBase environment) declare the same functions in two dialects.
Loading both into `FunctionSpec` lets the tests compare them field by field and lets the packager
know each function's layers. Loading never judges; it only records what is written (including
which key an environment block was written under), so a test can say precisely what is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = "functions"
SERVERLESS_FILE = "serverless.yml"
CLOUDBASE_FILE = "cloudbaserc.json"
LAYER_DESCRIPTORS = ("layers/common/serverless.yml", "layers/deps/serverless.yml")

# SCF CreateFunction: letters, digits, `-` and `_`, starts with a letter, ends with a letter or
# digit, 2-60 characters (tencentcloud-sdk CreateFunctionRequest.FunctionName).
SCF_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]$")
ENV_KEY_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# SCF refuses user variables with these prefixes; the platform injects its own under them.
RESERVED_ENV_PREFIXES = ("SCF_", "QCLOUD_", "TENCENTCLOUD_")
# Triggers that invoke asynchronously: failed events are retried, then dead-lettered or dropped.
ASYNC_TRIGGER_TYPES = frozenset({"timer", "cos", "cmq", "eventbridge"})
HTTP_TRIGGER_TYPES = frozenset({"http", "apigw"})

SERVERLESS_ENV_REF = re.compile(r"^\$\{env\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}$")
CLOUDBASE_ENV_REF = re.compile(r"^\{\{env\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}\}$")
_OUTPUT_REF = re.compile(r"^\$\{output:.*:(?P<instance>[A-Za-z0-9_-]+)\.(?P<key>\w+)\}$")
_RUNTIME_SUFFIX = re.compile(r"-py3\d+$")


class DescriptorError(Exception):
    """A descriptor is missing or is not shaped as its tool expects."""


def scf_name(folder: str) -> str:
    """The deployed function name of a function folder (`push_ingest` → `push-ingest`)."""
    return folder.replace("_", "-")


def folder_name(name: str) -> str:
    """The function folder of a deployed function name (`push-ingest` → `push_ingest`)."""
    return name.replace("-", "_")


def discover_functions(root: Path = REPO_ROOT) -> dict[str, Path]:
    """Every `functions/<folder>/index.py`, as folder name → folder path, sorted by name."""
    return function_folders(root / FUNCTIONS_DIR)


def function_folders(base: Path) -> dict[str, Path]:
    """Every `<folder>/index.py` under `base`, as folder name → folder path, sorted by name."""
    found = {
        index.parent.name: index.parent
        for index in base.glob("*/index.py")
        if not index.parent.name.startswith((".", "_"))
    }
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class LayerRef:
    """A layer binding. `layer` is the logical layer, comparable across both descriptors."""

    layer: str
    name: str
    version: str


@dataclass(frozen=True)
class Trigger:
    type: str
    name: str
    params: Mapping[str, Any]
    cron: str | None = None

    @property
    def enabled(self) -> bool:
        return self.params.get("enable") is True

    @property
    def paths(self) -> tuple[str, ...]:
        paths = self.params.get("paths")
        if isinstance(paths, str):
            return (paths,)
        return tuple(str(p) for p in paths or ())


@dataclass(frozen=True)
class FunctionSpec:
    """One function as a descriptor declares it, with inherited defaults applied.

    `explicit` holds the keys written on the function entry itself; `env_field` the key its
    environment was written under (None when it declares none).
    """

    key: str
    name: str | None
    src: str | None
    handler: str | None
    runtime: str | None
    memory: Any
    timeout: Any
    layers: tuple[LayerRef, ...]
    env: Mapping[str, Any]
    env_field: str | None
    triggers: tuple[Trigger, ...]
    http_paths: tuple[str, ...]
    retry_num: Any
    dead_letter: Any
    explicit: frozenset[str]
    raw: Mapping[str, Any]

    @property
    def deployed_name(self) -> str:
        return self.name or self.key

    @property
    def folder(self) -> str:
        return folder_name(self.deployed_name)

    @property
    def is_async(self) -> bool:
        return any(t.type in ASYNC_TRIGGER_TYPES for t in self.triggers)

    def triggers_of(self, *types: str) -> tuple[Trigger, ...]:
        return tuple(t for t in self.triggers if t.type in types)


@dataclass(frozen=True)
class Descriptor:
    """A loaded descriptor: functions by their key, plus shape problems met while loading."""

    path: Path
    functions: Mapping[str, FunctionSpec]
    problems: tuple[str, ...]
    raw: Mapping[str, Any]

    def by_folder(self) -> dict[str, FunctionSpec]:
        return {spec.folder: spec for spec in self.functions.values()}


@dataclass(frozen=True)
class LayerInstance:
    """A Serverless Components `layer` instance (`layers/*/serverless.yml`)."""

    path: Path
    app: str | None
    component: str | None
    instance: str | None
    name: str | None
    runtimes: tuple[str, ...]
    src: str | None


def load_serverless(path: Path | None = None) -> Descriptor:
    """Load a `multi-scf` serverless.yml."""
    path = path or REPO_ROOT / SERVERLESS_FILE
    data = _read_yaml(path)
    inputs = _mapping(data.get("inputs"))
    raw_functions = _mapping(inputs.get("functions"))
    problems: list[str] = []
    triggers: dict[str, list[Trigger]] = {key: [] for key in raw_functions}
    for index, item in enumerate(inputs.get("triggers") or []):
        for key, trigger in _serverless_triggers(_mapping(item)):
            if key in triggers:
                triggers[key].append(trigger)
            else:
                problems.append(f"triggers[{index}] names unknown function {key!r}")
    functions: dict[str, FunctionSpec] = {}
    for key, value in raw_functions.items():
        raw = _mapping(value)
        env, env_field, env_problems = _serverless_env(raw)
        problems.extend(f"functions.{key}: {p}" for p in env_problems)
        own_triggers = tuple(triggers[key])
        functions[str(key)] = FunctionSpec(
            key=str(key),
            name=_opt_str(raw.get("name")),
            src=_src_path(raw.get("src")),
            handler=_opt_str(raw.get("handler")),
            runtime=_opt_str(raw.get("runtime", inputs.get("runtime"))),
            memory=raw.get("memorySize", inputs.get("memorySize")),
            timeout=raw.get("timeout", inputs.get("timeout")),
            layers=tuple(_serverless_layer(_mapping(layer)) for layer in raw.get("layers") or ()),
            env=env,
            env_field=env_field,
            triggers=own_triggers,
            http_paths=tuple(
                p for t in own_triggers if t.type in HTTP_TRIGGER_TYPES for p in t.paths
            ),
            retry_num=raw.get("retryNum"),
            dead_letter=raw.get("deadLetter"),
            explicit=frozenset(str(k) for k in raw),
            raw=raw,
        )
    return Descriptor(path, functions, tuple(problems), data)


def load_cloudbase(path: Path | None = None) -> Descriptor:
    """Load a CloudBase CLI cloudbaserc.json (flattened 0.6+ / version 2.0 format)."""
    path = path or REPO_ROOT / CLOUDBASE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DescriptorError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise DescriptorError(f"{path}: top level is not an object")
    functions: dict[str, FunctionSpec] = {}
    problems: list[str] = []
    for index, value in enumerate(data.get("functions") or []):
        raw = _mapping(value)
        name = _opt_str(raw.get("name"))
        if not name:
            problems.append(f"functions[{index}] has no name")
            continue
        if name in functions:
            problems.append(f"functions[{index}]: {name!r} is declared twice")
        env = raw.get("envVariables")
        path_value = _opt_str(raw.get("path"))
        functions[name] = FunctionSpec(
            key=name,
            name=name,
            src=_opt_str(raw.get("dir")),
            handler=_opt_str(raw.get("handler")),
            runtime=_opt_str(raw.get("runtime")),
            memory=raw.get("memorySize"),
            timeout=raw.get("timeout"),
            layers=tuple(_cloudbase_layer(_mapping(layer)) for layer in raw.get("layers") or ()),
            env=dict(env) if isinstance(env, Mapping) else {},
            env_field="envVariables" if env is not None else None,
            triggers=tuple(
                Trigger(
                    type=str(t.get("type", "")),
                    name=str(t.get("name", "")),
                    params=t,
                    cron=_opt_str(t.get("config")),
                )
                for t in (_mapping(item) for item in raw.get("triggers") or ())
            ),
            http_paths=(path_value,) if path_value else (),
            retry_num=None,
            dead_letter=None,
            explicit=frozenset(str(k) for k in raw),
            raw=raw,
        )
    return Descriptor(path, functions, tuple(problems), data)


def load_layer_instance(path: Path) -> LayerInstance:
    data = _read_yaml(path)
    inputs = _mapping(data.get("inputs"))
    runtimes = inputs.get("runtimes") or ()
    return LayerInstance(
        path=path,
        app=_opt_str(data.get("app")),
        component=_opt_str(data.get("component")),
        instance=_opt_str(data.get("name")),
        name=_opt_str(inputs.get("name")),
        runtimes=tuple(str(r) for r in runtimes),
        src=_src_path(inputs.get("src")),
    )


def load_layer_instances(root: Path = REPO_ROOT) -> dict[str, LayerInstance]:
    """The project's layer instances by instance name (the name `${output:...}` refers to)."""
    found: dict[str, LayerInstance] = {}
    for relative in LAYER_DESCRIPTORS:
        layer = load_layer_instance(root / relative)
        found[layer.instance or relative] = layer
    return found


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DescriptorError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise DescriptorError(f"{path}: top level is not a mapping")
    return data


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _src_path(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return _opt_str(value.get("src"))
    return _opt_str(value)


def _serverless_env(raw: Mapping[str, Any]) -> tuple[dict[str, Any], str | None, list[str]]:
    """The environment of a multi-scf function and the key it was written under.

    multi-scf reads `environment`, either `[{key, value}]` or `{variables: {...}}`.
    """
    fields = [f for f in ("environment", "environments") if f in raw]
    problems = [f"environment declared under both {fields}"] if len(fields) > 1 else []
    if not fields:
        return {}, None, problems
    field = fields[0]
    value = raw[field]
    env: dict[str, Any] = {}
    if isinstance(value, Mapping) and isinstance(value.get("variables"), Mapping):
        env = dict(value["variables"])
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping) and "key" in item:
                key = str(item["key"])
                if key in env:
                    problems.append(f"environment key {key} declared twice")
                env[key] = item.get("value")
            else:
                problems.append(f"environment entry {item!r} is not {{key, value}}")
    elif value is not None:
        problems.append(f"{field} is neither a [{{key, value}}] list nor {{variables: ...}}")
    return env, field, problems


def _serverless_triggers(item: Mapping[str, Any]) -> list[tuple[str, Trigger]]:
    kind = str(item.get("type", ""))
    params = _mapping(item.get("parameters"))
    name = str(params.get("name", ""))
    if kind == "apigw":
        shared = {k: v for k, v in params.items() if k != "apis"}
        return [
            (
                str(_mapping(api).get("function", item.get("function", ""))),
                Trigger(kind, name, {**shared, "paths": [_mapping(api).get("path", "")]}),
            )
            for api in params.get("apis") or ()
        ]
    cron = _opt_str(params.get("cronExpression")) if kind == "timer" else None
    return [(str(item.get("function", "")), Trigger(kind, name, params, cron))]


def _serverless_layer(raw: Mapping[str, Any]) -> LayerRef:
    name = str(raw.get("name", ""))
    match = _OUTPUT_REF.match(name)
    return LayerRef(
        layer=match["instance"] if match else name,
        name=name,
        version=str(raw.get("version", "")),
    )


def _cloudbase_layer(raw: Mapping[str, Any]) -> LayerRef:
    name = str(raw.get("name", ""))
    return LayerRef(
        layer=_RUNTIME_SUFFIX.sub("", name), name=name, version=str(raw.get("version", ""))
    )
