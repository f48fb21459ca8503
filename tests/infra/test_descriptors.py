"""serverless.yml, cloudbaserc.json and `functions/` stay in step.

Each rule is a checker returning problems, run once over the real project and once over sample
projects written to tmp_path (a good one that must pass and a broken one every rule must catch).

Facts the rules rest on (checked against the tools' sources):
- multi-scf passes each function entry to the SCF toolkit as is: it reads `environment` (a
  `[{key, value}]` list or `{variables: {...}}`), `deadLetter: {type, name[, filterType]}`,
  `retryNum` and `msgTTL`; of the top-level inputs only runtime/namespace/type/description are
  inherited, so memorySize and timeout are written on every function. `inputs.src` is required:
  per-function `src` is taken from inside it.
- cloudbaserc.json: `dir` is the function's code folder (default `functionRoot/name`, which would
  be `functions/admin-api`, so it is required here); only `timer` triggers are accepted; one HTTP
  access `path` per function. When serverless.yml lists several `paths` for a function, the FIRST
  is the one CloudBase binds.
- SCF function names: letters, digits, `-`, `_`; start with a letter; 2-60 characters. Variables
  prefixed SCF_, QCLOUD_ or TENCENTCLOUD_ are reserved by the platform and may not be declared.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from hybrid.config import FunctionSettings, env_names
from infra.descriptors import (
    ASYNC_TRIGGER_TYPES,
    CLOUDBASE_ENV_REF,
    HTTP_TRIGGER_TYPES,
    REPO_ROOT,
    RESERVED_ENV_PREFIXES,
    SCF_NAME_PATTERN,
    SERVERLESS_ENV_REF,
    Descriptor,
    DescriptorError,
    LayerInstance,
    discover_functions,
    load_cloudbase,
    load_layer_instances,
    load_serverless,
    scf_name,
)
from infra.package import COMMON_LAYER, DEPS_LAYER, deps_layer_name

SCF_RUNTIME = "Python3.10"
CLOUDBASE_RUNTIME = "Python3.11"
HANDLER = "index.main_handler"
EXPECTED_LAYERS = (COMMON_LAYER, DEPS_LAYER)
SCF_TIMEOUT = range(1, 901)
CLOUDBASE_TIMEOUT = range(1, 61)
SCF_MEMORY = frozenset({64, *range(128, 3073, 128)})
CLOUDBASE_MEMORY = frozenset({128, 256, 512, 1024, 2048})
_SECRET_NAME = re.compile(r"(PASS|SECRET|TOKEN|KEY|DSN|_URL$|CREDENTIAL)", re.IGNORECASE)
_URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]*:[^@/\s]+@")
_OPAQUE = re.compile(r"[A-Za-z0-9+/=_-]{24,}")
_SECRET_PREFIXES = ("whsec_", "hk_", "sk-", "AKID")


@dataclass(frozen=True)
class Project:
    root: Path
    serverless: Descriptor
    cloudbase: Descriptor
    folders: tuple[str, ...]
    settings: Mapping[str, type[BaseSettings] | None]
    layers: Mapping[str, LayerInstance]

    def pairs(self) -> Iterable[tuple[str, Any, Any]]:
        """(folder, serverless spec, cloudbase spec) for every function both declare."""
        scf, tcb = self.serverless.by_folder(), self.cloudbase.by_folder()
        for folder in self.folders:
            if folder in scf and folder in tcb:
                yield folder, scf[folder], tcb[folder]


def load_project(
    root: Path, settings: Mapping[str, type[BaseSettings] | None] | None = None
) -> Project:
    folders = tuple(discover_functions(root))
    if settings is None:
        settings = {
            f: getattr(import_module(f"functions.{f}.index"), "SETTINGS", None) for f in folders
        }
    return Project(
        root=root,
        serverless=load_serverless(root / "serverless.yml"),
        cloudbase=load_cloudbase(root / "cloudbaserc.json"),
        folders=folders,
        settings=settings,
        layers=load_layer_instances(root),
    )


# -- checks -----------------------------------------------------------------------------------


def check_loaded_cleanly(p: Project) -> list[str]:
    return [f"serverless.yml: {x}" for x in p.serverless.problems] + [
        f"cloudbaserc.json: {x}" for x in p.cloudbase.problems
    ]


def check_same_functions(p: Project) -> list[str]:
    problems = []
    folders = set(p.folders)
    keys = set(p.serverless.functions)
    if keys != folders:
        problems.append(
            f"serverless.yml functions {sorted(keys)} != function folders {sorted(folders)}"
        )
    for key, spec in p.serverless.functions.items():
        if spec.name != scf_name(key):
            problems.append(f"serverless.yml {key}: name {spec.name!r}, expected {scf_name(key)!r}")
    names = set(p.cloudbase.functions)
    expected = {scf_name(f) for f in folders}
    if names != expected:
        problems.append(f"cloudbaserc.json names {sorted(names)} != {sorted(expected)}")
    for name in sorted(keys | names):
        deployed = p.serverless.functions[name].deployed_name if name in keys else name
        if not SCF_NAME_PATTERN.match(deployed):
            problems.append(f"{deployed!r} is not a valid SCF function name")
    return problems


def _norm(path: str | None) -> str | None:
    return None if path is None else Path(path).as_posix().removeprefix("./").rstrip("/")


def check_code_locations(p: Project) -> list[str]:
    problems = []
    if not p.serverless.raw.get("inputs", {}).get("src"):
        problems.append(
            "serverless.yml: inputs.src is missing (multi-scf takes function src from it)"
        )
    if _norm(p.cloudbase.raw.get("functionRoot")) != "functions":
        problems.append("cloudbaserc.json: functionRoot is not ./functions")
    for folder, scf, tcb in p.pairs():
        expected = f"functions/{folder}"
        if _norm(scf.src) != expected:
            problems.append(f"serverless.yml {folder}: src {scf.src!r}, expected ./{expected}")
        if _norm(tcb.src) != expected:
            problems.append(f"cloudbaserc.json {tcb.name}: dir {tcb.src!r}, expected ./{expected}")
    return problems


def check_handler_memory_timeout_layers(p: Project) -> list[str]:
    problems = []
    for folder, scf, tcb in p.pairs():
        for label, spec in (("serverless.yml", scf), ("cloudbaserc.json", tcb)):
            if spec.handler != HANDLER:
                problems.append(f"{label} {folder}: handler {spec.handler!r}, expected {HANDLER}")
            layers = tuple(layer.layer for layer in spec.layers)
            if layers != EXPECTED_LAYERS:
                problems.append(f"{label} {folder}: layers {layers}, expected {EXPECTED_LAYERS}")
        for field in ("memorySize", "timeout"):
            if field not in scf.explicit:
                problems.append(
                    f"serverless.yml {folder}: {field} must be set on the function "
                    "(multi-scf does not inherit it from inputs)"
                )
        if scf.memory != tcb.memory:
            problems.append(f"{folder}: memory {scf.memory} (SCF) != {tcb.memory} (CloudBase)")
        if scf.timeout != tcb.timeout:
            problems.append(f"{folder}: timeout {scf.timeout} (SCF) != {tcb.timeout} (CloudBase)")
    return problems


def check_runtimes(p: Project) -> list[str]:
    problems = []
    for folder, scf, tcb in p.pairs():
        if scf.runtime != SCF_RUNTIME:
            problems.append(
                f"serverless.yml {folder}: runtime {scf.runtime!r}, expected {SCF_RUNTIME}"
            )
        if tcb.runtime != CLOUDBASE_RUNTIME:
            problems.append(
                f"cloudbaserc.json {tcb.name}: runtime {tcb.runtime!r}, "
                f"expected {CLOUDBASE_RUNTIME}"
            )
    return problems


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_platform_limits(p: Project) -> list[str]:
    problems = []
    for folder, scf, tcb in p.pairs():
        if not (_is_int(scf.timeout) and scf.timeout in SCF_TIMEOUT):
            problems.append(f"serverless.yml {folder}: timeout {scf.timeout!r} outside 1-900 s")
        if not (_is_int(tcb.timeout) and tcb.timeout in CLOUDBASE_TIMEOUT):
            problems.append(f"cloudbaserc.json {tcb.name}: timeout {tcb.timeout!r} outside 1-60 s")
        if not (_is_int(scf.memory) and scf.memory in SCF_MEMORY):
            problems.append(f"serverless.yml {folder}: memorySize {scf.memory!r} not an SCF step")
        if not (_is_int(tcb.memory) and tcb.memory in CLOUDBASE_MEMORY):
            problems.append(
                f"cloudbaserc.json {tcb.name}: memorySize {tcb.memory!r} not in "
                f"{sorted(CLOUDBASE_MEMORY)}"
            )
        if len(scf.layers) > 5 or len(tcb.layers) > 5:
            problems.append(f"{folder}: more than 5 layers")
    return problems


def check_layer_references(p: Project) -> list[str]:
    problems = []
    app = p.serverless.raw.get("app")
    expected_names = {COMMON_LAYER: COMMON_LAYER, DEPS_LAYER: deps_layer_name("3.10")}
    for instance, layer_name in expected_names.items():
        layer = p.layers.get(instance)
        if layer is None:
            problems.append(f"no layer instance named {instance!r} under layers/")
            continue
        if layer.component != "layer" or layer.app != app:
            problems.append(f"{layer.path}: component {layer.component!r}, app {layer.app!r}")
        if layer.name != layer_name:
            problems.append(f"{layer.path}: layer name {layer.name!r}, expected {layer_name!r}")
        if SCF_RUNTIME not in layer.runtimes:
            problems.append(f"{layer.path}: runtimes {layer.runtimes} lack {SCF_RUNTIME}")
    cloudbase_names = {COMMON_LAYER: COMMON_LAYER, DEPS_LAYER: deps_layer_name("3.11")}
    for folder, scf, tcb in p.pairs():
        for ref in scf.layers:
            expected = f"${{output:${{stage}}:${{app}}:{ref.layer}."
            if not (ref.name == expected + "name}" and ref.version == expected + "version}"):
                problems.append(f"serverless.yml {folder}: layer {ref} is not an output reference")
        for ref in tcb.layers:
            if ref.name != cloudbase_names.get(ref.layer):
                problems.append(f"cloudbaserc.json {tcb.name}: layer name {ref.name!r}")
            if not (CLOUDBASE_ENV_REF.match(ref.version) or ref.version.isdigit()):
                problems.append(f"cloudbaserc.json {tcb.name}: layer version {ref.version!r}")
    return problems


def _expected_env(settings: type[BaseSettings]) -> set[str]:
    return {n for n in env_names(settings) if not n.startswith(RESERVED_ENV_PREFIXES)}


def check_environment_keys(p: Project) -> list[str]:
    problems = []
    for folder, scf, tcb in p.pairs():
        if scf.env_field != "environment":
            problems.append(
                f"serverless.yml {folder}: environment written under {scf.env_field!r}; "
                "multi-scf reads `environment`"
            )
        settings = p.settings.get(folder)
        if settings is None:
            problems.append(f"functions/{folder}/index.py exposes no SETTINGS")
            continue
        expected = _expected_env(settings)
        for label, spec in (("serverless.yml", scf), ("cloudbaserc.json", tcb)):
            declared = set(spec.env)
            if declared != expected:
                problems.append(
                    f"{label} {folder}: missing {sorted(expected - declared)}, "
                    f"not read by SETTINGS {sorted(declared - expected)}"
                )
    return problems


def check_reserved_names(p: Project) -> list[str]:
    return [
        f"{label} {spec.deployed_name}: {key} uses a platform-reserved prefix"
        for label, descriptor in (
            ("serverless.yml", p.serverless),
            ("cloudbaserc.json", p.cloudbase),
        )
        for spec in descriptor.functions.values()
        for key in spec.env
        if str(key).startswith(RESERVED_ENV_PREFIXES)
    ]


def looks_like_secret(value: str) -> bool:
    return bool(
        _URL_WITH_PASSWORD.search(value)
        or _OPAQUE.fullmatch(value)
        or value.startswith(_SECRET_PREFIXES)
    )


def _field_env_names(settings: type[BaseSettings], name: str) -> set[str]:
    """The variables one field reads (the per-field half of `env_names`)."""
    alias = settings.model_fields[name].validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        return {str(c).upper() for c in choices}
    if isinstance(alias, str):
        return {alias.upper()}
    return {f"{settings.model_config.get('env_prefix', '')}{name}".upper()}


def _secret_fields(settings: type[BaseSettings] | None) -> set[str]:
    """The variables holding SecretStr settings."""
    if settings is None:
        return set()
    secret: set[str] = set()
    for name, field in settings.model_fields.items():
        annotation = field.annotation
        if annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ()):
            secret |= _field_env_names(settings, name)
    return secret


def check_environment_values(p: Project) -> list[str]:
    problems = []
    for folder, scf, tcb in p.pairs():
        secrets = _secret_fields(p.settings.get(folder))
        refs: dict[str, dict[str, str]] = {}
        for label, spec, pattern in (
            ("serverless.yml", scf, SERVERLESS_ENV_REF),
            ("cloudbaserc.json", tcb, CLOUDBASE_ENV_REF),
        ):
            for key, value in spec.env.items():
                if not isinstance(value, str):
                    problems.append(f"{label} {folder}: {key} is {value!r}, not a string")
                    continue
                match = pattern.match(value)
                if match:
                    refs.setdefault(key, {})[label] = match["name"]
                elif key in secrets or _SECRET_NAME.search(key):
                    problems.append(f"{label} {folder}: secret {key} must be a reference")
                elif looks_like_secret(value):
                    problems.append(f"{label} {folder}: {key} holds a secret-looking literal")
        for key, found in refs.items():
            if len(set(found.values())) > 1:
                problems.append(f"{folder}: {key} refers to different variables {found}")
    return problems


def check_timers(p: Project) -> list[str]:
    problems = []
    for folder, scf, tcb in p.pairs():
        scf_crons = sorted(t.cron or "" for t in scf.triggers_of("timer"))
        tcb_crons = sorted(t.cron or "" for t in tcb.triggers_of("timer"))
        if scf_crons != tcb_crons:
            problems.append(f"{folder}: timers {scf_crons} (SCF) != {tcb_crons} (CloudBase)")
        for cron in scf_crons + tcb_crons:
            if len(cron.split()) != 7:
                problems.append(f"{folder}: cron {cron!r} does not have 7 fields")
    return problems


def check_cloudbase_trigger_types(p: Project) -> list[str]:
    return [
        f"cloudbaserc.json {spec.name}: trigger {t.name!r} of type {t.type!r} (only timer exists)"
        for spec in p.cloudbase.functions.values()
        for t in spec.triggers
        if t.type != "timer"
    ]


def check_http_paths(p: Project) -> list[str]:
    problems = []
    for folder, scf, tcb in p.pairs():
        for t in scf.triggers_of(*HTTP_TRIGGER_TYPES):
            if not t.paths:
                problems.append(f"serverless.yml {folder}: http trigger {t.name!r} lists no paths")
        for path in scf.http_paths + tcb.http_paths:
            if not path.startswith("/"):
                problems.append(f"{folder}: path {path!r} does not start with /")
        bound = scf.http_paths[:1]
        if tcb.http_paths != bound:
            problems.append(
                f"{folder}: cloudbaserc.json path {tcb.http_paths} "
                f"!= first serverless.yml path {bound}"
            )
    return problems


def check_triggers_enabled(p: Project) -> list[str]:
    return [
        f"serverless.yml {key}: {t.type} trigger {t.name!r} is not `enable: true` (default false)"
        for key, spec in p.serverless.functions.items()
        for t in spec.triggers
        if t.type not in HTTP_TRIGGER_TYPES and not t.enabled
    ]


def check_async_reliability(p: Project) -> list[str]:
    problems = []
    for key, spec in p.serverless.functions.items():
        if not spec.is_async:
            continue
        kinds = sorted({t.type for t in spec.triggers if t.type in ASYNC_TRIGGER_TYPES})
        if not (_is_int(spec.retry_num) and spec.retry_num >= 0):
            problems.append(f"serverless.yml {key} ({kinds}): retryNum {spec.retry_num!r}")
        dead = spec.dead_letter
        if not (
            isinstance(dead, Mapping)
            and all(isinstance(dead.get(f), str) and dead.get(f) for f in ("type", "name"))
        ):
            problems.append(
                f"serverless.yml {key} ({kinds}): deadLetter {dead!r} is not {{type, name}}"
            )
    return problems


CHECKS: dict[str, Callable[[Project], list[str]]] = {
    "loaded": check_loaded_cleanly,
    "functions": check_same_functions,
    "locations": check_code_locations,
    "handler_memory_timeout_layers": check_handler_memory_timeout_layers,
    "runtimes": check_runtimes,
    "limits": check_platform_limits,
    "layers": check_layer_references,
    "env_keys": check_environment_keys,
    "reserved": check_reserved_names,
    "env_values": check_environment_values,
    "timers": check_timers,
    "cloudbase_triggers": check_cloudbase_trigger_types,
    "http_paths": check_http_paths,
    "enabled": check_triggers_enabled,
    "async": check_async_reliability,
}


# -- the real project -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project(REPO_ROOT)


@pytest.mark.parametrize("rule", sorted(CHECKS))
def test_deploy_descriptors_and_function_folders_agree(rule: str, project: Project) -> None:
    problems = CHECKS[rule](project)
    assert not problems, "\n".join(problems)


def test_there_is_at_least_one_function(project: Project) -> None:
    assert project.folders


# -- samples ----------------------------------------------------------------------------------


class SampleApiSettings(FunctionSettings):
    database_url: SecretStr
    region_name: str = "ap-guangzhou"


class SampleJobSettings(FunctionSettings):
    redis_url: SecretStr


GOOD_SERVERLESS = """
app: hybrid-sync
stage: ${env.STAGE}
component: multi-scf
name: functions
inputs:
  src:
    src: ./
    exclude: [.env, tests/**]
  region: ${env.REGION}
  runtime: Python3.10
  functions:
    sample_api:
      name: sample-api
      src: ./functions/sample_api
      handler: index.main_handler
      memorySize: 256
      timeout: 15
      layers: &layers
        - name: ${output:${stage}:${app}:hybrid-common.name}
          version: ${output:${stage}:${app}:hybrid-common.version}
        - name: ${output:${stage}:${app}:hybrid-deps.name}
          version: ${output:${stage}:${app}:hybrid-deps.version}
      environment:
        - {key: APP_ENV, value: prod}
        - {key: LOG_LEVEL, value: "${env.LOG_LEVEL}"}
        - {key: DATABASE_URL, value: "${env.DATABASE_URL}"}
        - {key: REGION_NAME, value: ap-shanghai}
    sample_job:
      name: sample-job
      src: ./functions/sample_job
      handler: index.main_handler
      memorySize: 128
      timeout: 60
      retryNum: 2
      deadLetter: {type: QUEUE, name: sample-dead-letters}
      layers: *layers
      environment:
        variables:
          APP_ENV: "${env.APP_ENV}"
          LOG_LEVEL: "${env.LOG_LEVEL}"
          REDIS_URL: "${env.REDIS_URL}"
  triggers:
    - type: http
      function: sample_api
      parameters:
        name: sample-api-url
        paths: [/api/v1/sample, /api/v1/sample-legacy]
    - type: timer
      function: sample_job
      parameters:
        name: every-minute
        cronExpression: '0 */1 * * * * *'
        enable: true
"""

GOOD_CLOUDBASE = {
    "version": "2.0",
    "envId": "{{env.ENV_ID}}",
    "functionRoot": "./functions",
    "functions": [
        {
            "name": "sample-api",
            "dir": "./functions/sample_api",
            "handler": "index.main_handler",
            "runtime": "Python3.11",
            "timeout": 15,
            "memorySize": 256,
            "layers": [
                {"name": "hybrid-common", "version": "{{env.LAYER_COMMON_VERSION}}"},
                {"name": "hybrid-deps-py311", "version": "{{env.LAYER_DEPS_VERSION}}"},
            ],
            "envVariables": {
                "APP_ENV": "prod",
                "LOG_LEVEL": "{{env.LOG_LEVEL}}",
                "DATABASE_URL": "{{env.DATABASE_URL}}",
                "REGION_NAME": "ap-shanghai",
            },
            "path": "/api/v1/sample",
        },
        {
            "name": "sample-job",
            "dir": "./functions/sample_job",
            "handler": "index.main_handler",
            "runtime": "Python3.11",
            "timeout": 60,
            "memorySize": 128,
            "layers": [
                {"name": "hybrid-common", "version": "3"},
                {"name": "hybrid-deps-py311", "version": "{{env.LAYER_DEPS_VERSION}}"},
            ],
            "envVariables": {
                "APP_ENV": "{{env.APP_ENV}}",
                "LOG_LEVEL": "{{env.LOG_LEVEL}}",
                "REDIS_URL": "{{env.REDIS_URL}}",
            },
            "triggers": [{"name": "every-minute", "type": "timer", "config": "0 */1 * * * * *"}],
        },
    ],
}

SAMPLE_SETTINGS: dict[str, type[BaseSettings] | None] = {
    "sample_api": SampleApiSettings,
    "sample_job": SampleJobSettings,
}


def _write_sample(root: Path, serverless: str, cloudbase: Mapping[str, Any]) -> Path:
    (root / "serverless.yml").write_text(textwrap.dedent(serverless), encoding="utf-8")
    (root / "cloudbaserc.json").write_text(json.dumps(cloudbase, indent=2), encoding="utf-8")
    for folder in ("sample_api", "sample_job"):
        (root / "functions" / folder).mkdir(parents=True)
        (root / "functions" / folder / "index.py").write_text("", encoding="utf-8")
    for relative in ("layers/common/serverless.yml", "layers/deps/serverless.yml"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text((REPO_ROOT / relative).read_text(encoding="utf-8"))
    return root


def test_a_consistent_sample_project_passes_every_rule(tmp_path: Path) -> None:
    sample = load_project(_write_sample(tmp_path, GOOD_SERVERLESS, GOOD_CLOUDBASE), SAMPLE_SETTINGS)
    problems = {rule: check(sample) for rule, check in CHECKS.items()}
    assert not {rule: found for rule, found in problems.items() if found}


def _broken_cloudbase() -> dict[str, Any]:
    data = json.loads(json.dumps(GOOD_CLOUDBASE))
    api, job = data["functions"]
    api.update(
        runtime="Python3.10",
        timeout=120,
        memorySize=384,
        handler="index.main",
        path="/api/v1/other",
    )
    del api["dir"]
    api["envVariables"]["DATABASE_URL"] = "postgresql://app:hunter2hunter2@db.internal/app"
    api["envVariables"]["SCF_NAMESPACE"] = "default"
    api["layers"][1]["name"] = "hybrid-deps-py310"
    job["triggers"] = [
        {"name": "every-five", "type": "timer", "config": "0 */5 * * * * *"},
        {"name": "uploads", "type": "cos", "config": "bucket"},
    ]
    job["envVariables"]["REDIS_URL"] = "{{env.OTHER_REDIS}}"
    data["functions"].append(dict(api, name="ghost_fn"))
    return data


BROKEN_SERVERLESS = (
    GOOD_SERVERLESS.replace("  src:\n    src: ./\n    exclude: [.env, tests/**]\n", "")
    .replace("      memorySize: 256\n", "")
    .replace(
        "      environment:\n        - {key: APP_ENV",
        "      environments:\n        - {key: APP_ENV",
    )
    .replace(
        "        - {key: REGION_NAME, value: ap-shanghai}\n", "        - {key: TOKEN, value: abc}\n"
    )
    .replace("      retryNum: 2\n      deadLetter: {type: QUEUE, name: sample-dead-letters}\n", "")
    .replace("        enable: true\n", "        enable: false\n")
    .replace(
        "    - type: http\n      function: sample_api", "    - type: http\n      function: nobody"
    )
)


def test_a_broken_sample_project_is_caught_by_every_rule(tmp_path: Path) -> None:
    sample = load_project(
        _write_sample(tmp_path, BROKEN_SERVERLESS, _broken_cloudbase()), SAMPLE_SETTINGS
    )
    expected = {
        "loaded": "unknown function 'nobody'",
        "functions": "ghost_fn",
        "locations": "inputs.src is missing",
        "handler_memory_timeout_layers": "memorySize must be set on the function",
        "runtimes": "runtime 'Python3.10', expected Python3.11",
        "limits": "outside 1-60 s",
        "layers": "layer name 'hybrid-deps-py310'",
        "env_keys": "multi-scf reads `environment`",
        "reserved": "SCF_NAMESPACE",
        "env_values": "secret DATABASE_URL must be a reference",
        "timers": "!=",
        "cloudbase_triggers": "'cos'",
        "http_paths": "!= first serverless.yml path",
        "enabled": "is not `enable: true`",
        "async": "retryNum None",
    }
    assert set(expected) == set(CHECKS)
    for rule, fragment in expected.items():
        found = CHECKS[rule](sample)
        assert any(fragment in problem for problem in found), (rule, found)


def test_reference_values_must_name_the_same_variable_in_both_files(tmp_path: Path) -> None:
    sample = load_project(
        _write_sample(tmp_path, GOOD_SERVERLESS, _broken_cloudbase()), SAMPLE_SETTINGS
    )
    found = check_environment_values(sample)
    assert any("REDIS_URL refers to different variables" in p for p in found), found


def test_secret_looking_literals_are_recognised() -> None:
    assert looks_like_secret("postgresql://app:s3cret@db/app")
    assert looks_like_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert looks_like_secret("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE")
    assert looks_like_secret("3q2+7w==3q2+7w==3q2+7w==3q2+7w==")
    assert not looks_like_secret("ap-guangzhou")
    assert not looks_like_secret("prod")


def test_an_unreadable_descriptor_is_reported(tmp_path: Path) -> None:
    (tmp_path / "serverless.yml").write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(DescriptorError, match="not a mapping"):
        load_serverless(tmp_path / "serverless.yml")
