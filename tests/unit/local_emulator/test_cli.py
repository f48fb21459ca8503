"""`python -m local_emulator`: invoke, serve, demo; and the Emulator composition they run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from local_emulator import cli
from local_emulator.emulator import Emulator

REPO = Path(__file__).resolve().parents[3]


def run_cli(*args: str, out_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FIXTURE_OUT_DIR": str(out_dir), "FIXTURE_SECRET": "cli-secret-99"}
    return subprocess.run(
        [sys.executable, "-m", "local_emulator", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_invoke_with_a_fixture_event_prints_the_result(fixture_file: Path, out_dir: Path) -> None:
    event_file = fixture_file.parent / "events" / "direct.json"
    done = run_cli(
        "invoke",
        "echo",
        "--project",
        str(fixture_file),
        "--event",
        str(event_file),
        out_dir=out_dir,
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # stdout is only the result; logs go to stderr
    assert result["status_code"] == 200
    assert result["payload"]["event"] == {"hello": "from a fixture file"}
    assert result["cold_start"] is True
    assert result["error"] is None
    assert "echo handled a request" in done.stderr
    assert '"event": "invocation"' in done.stderr
    assert "cli-secret-99" not in done.stderr


def test_invoke_generates_an_http_event_for_an_api_gateway_function(
    fixture_file: Path, out_dir: Path
) -> None:
    done = run_cli(
        "invoke",
        "legacy",
        "--project",
        str(fixture_file),
        "--trigger",
        "http",
        "--path",
        "/legacy/items/7?x=1",
        "--header",
        "X-Test: yes",
        out_dir=out_dir,
    )
    assert done.returncode == 0, done.stderr
    event = json.loads(json.loads(done.stdout)["payload"]["body"])
    assert event["pathParameters"] == {"id": "7"}
    assert event["requestContext"]["path"] == "/legacy/items/{id}"
    assert event["queryString"] == {"x": "1"}
    assert event["headers"]["x-test"] == "yes"


def test_invoke_generates_timer_and_queue_events(
    fixture_file: Path, out_dir: Path, read_records: Callable[[Path], list[Any]]
) -> None:
    timer = run_cli(
        "invoke", "ticker", "--project", str(fixture_file), "--trigger", "timer", out_dir=out_dir
    )
    assert timer.returncode == 0, timer.stderr
    (record,) = read_records(out_dir / "ticker.jsonl")
    assert record["event"]["Type"] == "Timer"
    assert record["trigger_src"] == "timer"

    queue = run_cli(
        "invoke",
        "consumer",
        "--project",
        str(fixture_file),
        "--trigger",
        "queue",
        "--body",
        "hi",
        out_dir=out_dir,
    )
    assert queue.returncode == 0, queue.stderr
    (event,) = read_records(out_dir / "consumer.jsonl")
    assert event["data"]["msgBody"] == "hi"


def test_invoke_reports_failures_and_unknown_functions(fixture_file: Path, out_dir: Path) -> None:
    failed = run_cli("invoke", "fail", "--project", str(fixture_file), out_dir=out_dir)
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["status_code"] == 430

    unknown = run_cli("invoke", "nope", "--project", str(fixture_file), out_dir=out_dir)
    assert unknown.returncode == 2
    assert "no function named 'nope'" in unknown.stderr


def test_serve_prints_the_url_and_routes_then_stops_on_sigterm(
    fixture_file: Path, out_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "FIXTURE_OUT_DIR": str(out_dir)}
    args = [
        "serve",
        "--port",
        "0",
        "--no-stack",
        "--project",
        str(fixture_file),
        "--data-dir",
        str(tmp_path),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "local_emulator", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("running"):
                break
        url = next(line.split()[1] for line in lines if line.startswith("gateway: "))
        assert any("echo (echo): /echo/*" in line for line in lines)
        assert any("timer every-second" in line for line in lines)
        assert any("eventbridge topic jobs" in line for line in lines)
        assert requests.get(f"{url}/echo", timeout=10).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_demo_runs_the_demo_module_against_a_started_emulator(
    fixture_file: Path, tmp_path: Path, overrides: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []

    def run(emulator: Emulator) -> None:
        seen.append(requests.get(f"{emulator.url}/_emulator/health", timeout=10).status_code)

    monkeypatch.setitem(sys.modules, "local_emulator.demo", types.SimpleNamespace(run=run))
    monkeypatch.setattr("local_emulator.emulator.start_stack_for", lambda *a: (None, None))
    monkeypatch.setattr(cli, "_configure_logging", lambda stream: None)
    for name, value in overrides.items():
        monkeypatch.setenv(name, value)
    code = cli.main(
        [
            "demo",
            "--exit",
            "--port",
            "0",
            "--project",
            str(fixture_file),
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    assert seen == [200]


def test_emulator_composition_end_to_end(
    fixture_file: Path,
    tmp_path: Path,
    overrides: dict[str, str],
    redis_url: str,
    out_dir: Path,
    read_records: Callable[[Path], list[Any]],
    wait_for: Callable[..., Any],
) -> None:
    with Emulator(
        fixture_file,
        tmp_path / "data",
        env_overrides={**overrides, "REDIS_URL": redis_url},
        start_stack=False,
        retry_delays=(0.05, 0.05),
    ) as emulator:
        assert emulator.endpoints is None
        assert requests.get(f"{emulator.url}/echo", timeout=10).json()["event"]["path"] == "/echo"
        assert emulator.invoke("echo", {"x": 1}).payload["event"] == {"x": 1}

        emulator.publish("jobs", "via-emulator")
        wait_for(
            lambda: any(
                e.get("data", {}).get("msgBody") == "via-emulator"
                for e in read_records(out_dir / "consumer.jsonl")
            )
        )
        result = emulator.fire_timer("ticker", "nightly-fail").result(timeout=30)
        assert result.status_code == 430
        (letter,) = emulator.dead_letters()
        assert letter.attempts == 3
        assert (tmp_path / "data" / "dead-letters.jsonl").exists()
        url = emulator.url
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/_emulator/health", timeout=2)
