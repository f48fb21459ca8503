"""The main job from README.md: `python -m local_emulator demo` on embedded defaults."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def _demo(data_dir: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "COS_"))}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "local_emulator",
            "demo",
            "--exit",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed.stdout


def test_demo_prints_urls_and_credentials_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    first = _demo(tmp_path)
    assert re.search(r"gateway: http://127\.0\.0\.1:\d+", first)
    operator = re.search(r"operator key\s+(hop_\S+)", first)
    tenant = re.search(r"tenant\s+(ten_[0-9a-f]{16}) \(Demo Co\)", first)
    assert operator
    assert tenant
    assert re.search(r"tenant API key\s+hk_[0-9a-f]{16}_\S+", first)
    assert re.search(r"connector secret\s+whsec_\S+", first)
    assert "tenant.create" in first
    # The pull: a customer database, the relay connector, a job run now, masked rows stored.
    assert re.search(r"execution exe_[0-9a-f]{16}: success, 500 rows stored", first), first
    # The outage: exactly one firing and one resolved notice land in the local inbox.
    inbox = first.split("received by the local inbox")[1].split("==")[0]
    notices = [line.split()[0] for line in inbox.strip().splitlines()[1:]]
    assert notices == ["firing", "resolved"], inbox
    assert "ConnectorDisconnected" in inbox
    samples = first.split("what the cloud stored")[1].split("==")[0].strip().splitlines()
    assert len(samples) == 3
    for sample in samples:
        raw, stored = sample.split("->")
        assert "*" not in raw
        assert stored.count("*") >= 3
    # The cache: a MISS through the connector, a HIT, and while it is down a STALE copy.
    cache = first.split("a hot query cached in Redis")[1].split("==")[0]
    lines = cache.strip().splitlines()[1:]  # after the rest of the title
    assert [line.split()[1] for line in lines] == ["MISS", "HIT", "STALE"], cache
    assert cache.count("rows, first") == 3
    assert "*" in cache  # masked names and phones, never raw ones
    # Tokens: leases with a not-before jitter; the token that failed twice is cooling down.
    tokens = first.split("upstream API tokens leased")[1].split("==")[0]
    assert tokens.count("-> failure") == 2, tokens
    states = [line.split() for line in tokens.splitlines() if "cooldown until" in line]
    assert sorted(state[-1] == "-" for state in states) == [False, True], tokens
    assert "sk-demo-" not in first  # the secrets are never printed
    second = _demo(tmp_path)
    # Same data folder: the same operator key and the same tenant, found again, not recreated.
    assert f"operator key      {operator.group(1)}" in second
    assert f"tenant            {tenant.group(1)} (Demo Co)" in second
    assert "tenant.create" not in second.split("recent audit entries")[1]
