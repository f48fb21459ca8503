"""serverless.yml → ProjectSpec: functions, triggers, environment resolution, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_emulator.descriptor import (
    ApigwTrigger,
    CosTrigger,
    DescriptorError,
    HttpTrigger,
    QueueTrigger,
    TimerTrigger,
    load_project,
)

MINIMAL = """
app: t
component: multi-scf
name: fns
inputs:
  region: ${env.REGION}
  timeout: 7
  functions:
    one:
      src: ./one
      handler: index.main_handler
    two:
      name: two-custom
      src: ./two
      handler: index.main_handler
      timeout: 20
      memorySize: 512
  triggers:
"""


def write(tmp_path: Path, triggers: str) -> Path:
    path = tmp_path / "serverless.yml"
    path.write_text(MINIMAL + triggers)
    return path


def test_fixture_functions_have_names_paths_limits_and_raw_environment(fixture_file: Path) -> None:
    project = load_project(fixture_file, {})
    echo = project.functions["echo"]
    assert echo.name == "echo"
    assert echo.src == fixture_file.parent / "functions" / "echo"
    assert echo.handler == "index.main_handler"
    assert (echo.memory_mb, echo.timeout_s, echo.runtime) == (256, 5, "Python3.10")
    assert echo.environment == {
        "OUT_DIR": "${env.FIXTURE_OUT_DIR}",
        "SECRET_TOKEN": "${env.FIXTURE_SECRET}",
        "GREETING": "hello ${env.FIXTURE_NAME}",
    }
    fail = project.functions["fail"]
    assert (fail.name, fail.memory_mb, fail.timeout_s) == ("fail", 128, 10)
    assert project.region == "ap-guangzhou"
    assert project.function("echo") is project.function("echo")
    with pytest.raises(KeyError):
        project.function("missing")


def test_environment_resolves_overrides_then_environ_then_empty(fixture_file: Path) -> None:
    project = load_project(fixture_file, {})
    env = project.functions["echo"].resolved_environment(
        {"FIXTURE_SECRET": "from-override"},
        {"FIXTURE_SECRET": "from-environ", "FIXTURE_NAME": "env-name"},
    )
    assert env == {"OUT_DIR": "", "SECRET_TOKEN": "from-override", "GREETING": "hello env-name"}


def test_trigger_kinds_are_parsed_from_the_fixture(fixture_file: Path) -> None:
    project = load_project(fixture_file, {})
    (echo_url,) = project.functions["echo"].triggers
    assert isinstance(echo_url, HttpTrigger)
    assert echo_url.paths == ("/echo", "/api/v1/echo")

    legacy = project.functions["legacy"].triggers
    assert [(t.method, t.path) for t in legacy] == [
        ("GET", "/legacy/items/{id}"),
        ("POST", "/legacy/items"),
    ]
    assert all(isinstance(t, ApigwTrigger) and t.integrated_response for t in legacy)

    timers = {t.name: t for t in project.functions["ticker"].triggers}
    assert all(isinstance(t, TimerTrigger) for t in timers.values())
    assert timers["every-second"].enabled
    assert timers["every-second"].argument == "tick"
    assert timers["nightly-fail"].cron.expression == "0 0 3 * * * *"
    assert not timers["disabled"].enabled  # multi-scf: `enable` defaults to false

    queues = project.functions["consumer"].triggers
    assert [(t.kind, t.topic) for t in queues] == [("eventbridge", "jobs"), ("cmq", "legacy-jobs")]
    assert all(isinstance(t, QueueTrigger) and t.enabled for t in queues)

    (cos,) = project.functions["uploads"].triggers
    assert isinstance(cos, CosTrigger)
    assert (cos.bucket, cos.bucket_short, cos.bucket_appid) == (
        "uploads-1250000000",
        "uploads",
        "1250000000",
    )
    assert (cos.prefix, cos.suffix, cos.events) == ("incoming/", "", ("cos:ObjectCreated:*",))


def test_output_references_are_left_alone_and_region_resolves(tmp_path: Path) -> None:
    path = write(tmp_path, "    []\n")
    text = path.read_text().replace(
        "      handler: index.main_handler\n    two:",
        "      handler: index.main_handler\n"
        "      environments:\n"
        "        - key: LAYER\n"
        "          value: ${output:${stage}:${app}:hybrid-common.name}\n"
        "    two:",
    )
    path.write_text(text)
    project = load_project(path, {"REGION": "ap-shanghai"})
    assert project.region == "ap-shanghai"
    assert project.functions["one"].resolved_environment({}, {}) == {
        "LAYER": "${output:${stage}:${app}:hybrid-common.name}"
    }
    assert project.functions["one"].timeout_s == 7
    assert project.functions["two"].name == "two-custom"
    assert load_project(path, {}, {}).region == "ap-guangzhou"


def test_trigger_parameters_resolve_env_references(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  - type: cos\n    function: one\n    parameters:\n"
        "      bucket: ${env.BUCKET}.cos.ap-guangzhou.myqcloud.com\n      enable: true\n",
    )
    (cos,) = load_project(path, {"BUCKET": "files-1250000000"}).functions["one"].triggers
    assert cos.bucket == "files-1250000000"


@pytest.mark.parametrize(
    ("triggers", "message"),
    [
        (
            "  - type: http\n    function: nope\n    parameters: {paths: [/x]}\n",
            "unknown function 'nope'",
        ),
        (
            "  - type: http\n    function: one\n    parameters: {paths: [/x]}\n"
            "  - type: http\n    function: two\n    parameters: {paths: [/x/]}\n",
            "path prefix '/x' is declared by both 'one' and 'two'",
        ),
        (
            "  - type: timer\n    function: one\n"
            "    parameters: {name: t, cronExpression: '0 0 0 ? * * *', enable: true}\n",
            "bad cronExpression",
        ),
        (
            "  - type: timer\n    function: one\n"
            "    parameters: {name: t, cronExpression: '0 0 0 * * *', enable: true}\n",
            "bad cronExpression",
        ),
        (
            "  - type: apigw\n    parameters:\n      apis:\n"
            "        - {path: '/a/{id}', method: GET, function: ghost}\n",
            "unknown function 'ghost'",
        ),
        ("  - type: ckafka\n    function: one\n    parameters: {}\n", "does not support"),
        (
            "  - type: http\n    function: one\n    parameters: {paths: [x]}\n",
            "must start with '/'",
        ),
        ("  - type: eventbridge\n    function: one\n    parameters: {name: n}\n", "topic"),
    ],
)
def test_invalid_descriptors_raise_a_clear_error(
    tmp_path: Path, triggers: str, message: str
) -> None:
    with pytest.raises(DescriptorError, match=message.replace("(", r"\(").replace("?", r"\?")):
        load_project(write(tmp_path, triggers), {})


def test_the_repository_descriptor_loads() -> None:
    repo_yml = Path(__file__).resolve().parents[3] / "serverless.yml"
    project = load_project(repo_yml, {})
    assert project.functions
    for spec in project.functions.values():
        assert spec.name == spec.key.replace("_", "-")
