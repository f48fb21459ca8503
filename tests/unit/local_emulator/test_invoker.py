"""Warm worker subprocesses per function: context, isolation, errors, time limits, async retries."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import pytest

from local_emulator.descriptor import ProjectSpec, load_project
from local_emulator.invoker import AsyncInvoker, Invoker

CONTEXT_KEYS = {
    "memory_limit_in_mb",
    "time_limit_in_ms",
    "request_id",
    "environment",
    "environ",
    "function_version",
    "function_name",
    "namespace",
    "tencentcloud_region",
    "tencentcloud_appid",
    "tencentcloud_uin",
}


def test_each_invocation_gets_a_fresh_context_while_the_instance_stays_warm(
    invoker: Invoker,
) -> None:
    first = invoker.invoke("echo", {"n": 1}, trigger="direct")
    second = invoker.invoke("echo", {"n": 2}, trigger="direct")

    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.cold_start, second.cold_start) == (True, False)
    assert first.payload["pid"] == second.payload["pid"]
    assert (first.payload["calls"], second.payload["calls"]) == (1, 2)  # module state survives
    assert second.payload["event"] == {"n": 2}

    ctx1, ctx2 = first.payload["context"], second.payload["context"]
    assert set(ctx1) == CONTEXT_KEYS
    assert ctx1["request_id"] != ctx2["request_id"]
    assert ctx1["request_id"] == first.request_id
    assert ctx1["memory_limit_in_mb"] == 256
    assert ctx1["time_limit_in_ms"] == 5000
    assert ctx1["function_version"] == "$LATEST"
    assert (ctx1["function_name"], ctx1["namespace"]) == ("echo", "default")
    assert ctx1["tencentcloud_region"] == "ap-guangzhou"
    environment = json.loads(ctx1["environment"])
    assert isinstance(ctx1["environment"], str)
    assert environment["GREETING"] == "hello tester"
    assert environment["SCF_NAMESPACE"] == "default"
    assert "GREETING=hello tester" in ctx1["environ"].split(";")


def test_worker_has_its_own_environment_path_and_cwd(
    invoker: Invoker, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIXTURE_LEAK_CHECK", "emulator-only")
    result = invoker.invoke("echo", {}, trigger="direct")
    env = result.payload["env"]
    assert env["SECRET_TOKEN"] == "fixture-secret-value-7f3a"
    assert env["OUT_DIR"] == str(out_dir)
    assert env["SCF_FUNCTIONNAME"] == "echo"
    assert env["SCF_NAMESPACE"] == "default"
    assert env["SCF_FUNCTIONVERSION"] == "$LATEST"
    assert env["TENCENTCLOUD_REGION"] == "ap-guangzhou"
    assert env["TENCENTCLOUD_RUNENV"] == "SCF"
    assert env["TRIGGER_SRC"] is None
    assert env["FIXTURE_LEAK_CHECK"] is None  # the emulator's own environment does not leak in
    src = Path(invoker.project.functions["echo"].src)
    assert result.payload["cwd"] == str(src)
    assert result.payload["sys_path"][0] == str(src)
    assert result.payload["sys_path"][1].endswith(os.path.join("layers", "common"))


def test_timer_invocations_see_trigger_src(invoker: Invoker) -> None:
    assert invoker.invoke("echo", {}, trigger="timer").payload["env"]["TRIGGER_SRC"] == "timer"
    assert invoker.invoke("echo", {}, trigger="http").payload["env"]["TRIGGER_SRC"] is None


def test_handler_exception_returns_scf_error_and_logs_the_trace(
    invoker: Invoker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="local_emulator")
    result = invoker.invoke("fail", {}, trigger="direct")

    assert result.status_code == 430
    assert result.payload is None
    error = result.error
    assert error is not None
    assert error["errorCode"] == -1
    assert error["errorMessage"] == "user code exception caught"
    assert error["requestId"] == result.request_id
    assert error["statusCode"] == 430
    assert error["stackTrace"].startswith("Traceback (most recent call last):")
    assert 'index.py", line' in error["stackTrace"]
    assert error["stackTrace"].endswith("ValueError: boom")
    assert "worker.py" not in error["stackTrace"]

    lines = [json.loads(r.message) for r in caplog.records if r.name == "local_emulator.invoker"]
    (line,) = [entry for entry in lines if entry["request_id"] == result.request_id]
    assert line["function"] == "fail"
    assert line["status"] == 430
    assert "ValueError: boom" in line["stack_trace"]
    # the instance survives a handler exception
    assert invoker.invoke("fail", {}, trigger="direct").cold_start is False


def test_log_lines_carry_no_env_values_or_payloads(
    invoker: Invoker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="local_emulator")
    invoker.invoke("echo", {"payload_marker": "p-4711"}, trigger="direct")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert '"event": "invocation"' in text
    assert "fixture-secret-value-7f3a" not in text
    assert "p-4711" not in text


def test_non_serialisable_return_value_is_an_error(invoker: Invoker) -> None:
    result = invoker.invoke("fail", {"mode": "unserialisable"}, trigger="direct")
    assert result.status_code == 430
    assert result.error is not None
    assert "not JSON serializable" in result.error["errorMessage"]


def test_time_limit_kills_the_worker_and_the_next_call_cold_starts(invoker: Invoker) -> None:
    warm = invoker.invoke("slow", {"sleep": 0}, trigger="direct")
    timed_out = invoker.invoke("slow", {"sleep": 30}, trigger="direct")

    assert timed_out.status_code == 433
    assert timed_out.error is not None
    assert timed_out.error["errorMessage"] == "Invoking task timed out after 1 seconds"
    assert 1000 <= timed_out.duration_ms < 5000
    with pytest.raises(ProcessLookupError):  # the warm instance that ran it was killed
        os.kill(warm.payload["pid"], 0)

    after = invoker.invoke("slow", {"sleep": 0}, trigger="direct")
    assert after.status_code == 200
    assert after.cold_start is True


def test_concurrent_calls_run_in_separate_instances(invoker: Invoker) -> None:
    results = []

    def call() -> None:
        results.append(invoker.invoke("slow", {"sleep": 0.4}, trigger="direct"))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [200, 200, 200]
    assert all(r.cold_start for r in results)
    assert len({r.payload["pid"] for r in results}) == 3


def test_async_invocation_retries_twice_then_dead_letters(invoker: Invoker, tmp_path: Path) -> None:
    dead_file = tmp_path / "dead.jsonl"
    runner = AsyncInvoker(invoker, retry_delays=(0.05, 0.05), dead_letter_file=dead_file)
    done = []
    try:
        future = runner.submit(
            "fail", {"job": 7}, trigger="timer", on_done=lambda r, d: done.append(d)
        )
        result = future.result(timeout=30)
    finally:
        runner.close()
    assert result.status_code == 430
    (letter,) = runner.dead_letters()
    assert letter.attempts == 3
    assert letter.function == "fail"
    assert letter.event == {"job": 7}
    assert len(set(letter.request_ids)) == 3
    assert done == [letter]
    assert json.loads(dead_file.read_text())["attempts"] == 3


def test_async_success_is_not_retried(invoker: Invoker, project: ProjectSpec) -> None:
    runner = AsyncInvoker(invoker, retry_delays=(0.05, 0.05))
    try:
        result = runner.submit("echo", {}, trigger="cos").result(timeout=30)
    finally:
        runner.close()
    assert result.ok
    assert runner.dead_letters() == []


def test_import_failures_and_missing_handlers_are_reported_like_scf(tmp_path: Path) -> None:
    for name, code in (
        ("broken", "raise ImportError('no such dependency')\n"),
        ("nohandler", "x = 1\n"),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "index.py").write_text(code)
    (tmp_path / "serverless.yml").write_text(
        "component: multi-scf\ninputs:\n  functions:\n"
        "    broken: {src: ./broken, handler: index.main_handler}\n"
        "    nohandler: {src: ./nohandler, handler: index.main_handler}\n"
    )
    project = load_project(tmp_path / "serverless.yml", {})
    inv = Invoker(project, {}, layer_paths=[])
    try:
        broken = inv.invoke("broken", {}, trigger="direct")
        missing = inv.invoke("nohandler", {}, trigger="direct")
    finally:
        inv.close()
    assert broken.status_code == 430
    assert broken.error is not None
    assert "ImportError: no such dependency" in broken.error["stackTrace"]
    assert missing.status_code == 437
    assert missing.error is not None
    assert missing.error["requestId"] == missing.request_id
