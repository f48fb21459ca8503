"""Run the on-prem connector as the customer would (``python -m connector run``) from a
generated YAML config: for the demo, the end-to-end tests and the pull benchmark.

The process gets only what a customer's container would: its config file, its data dir, and
``PYTHONPATH`` pointing at the repository (the container copies the same modules).
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def connector_config(
    *,
    connector_id: str,
    secret: str,
    transport: str,
    data_dir: Path,
    sources: Mapping[str, Mapping[str, Any]],
    cloud_url: str | None = None,
    listen: str | None = None,
    low_bandwidth: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "connector_id": connector_id,
        "secret": secret,
        "transport": transport,
        "data_dir": str(data_dir),
        "low_bandwidth": low_bandwidth,
        "pseudonym_key": base64.b64encode(b"local-demo-pseudonym-key-32bytes").decode(),
        "log_level": "INFO",
        "sources": {name: dict(source) for name, source in sources.items()},
        **extra,
    }
    if cloud_url:
        config["cloud_url"] = cloud_url
    if listen:
        config["listen"] = listen
    return config


class ConnectorProcess:
    """One connector process; `start` again after `kill` to restart it on the same data dir."""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        log: IO[Any] | int | None = None,
        name: str = "connector",
    ) -> None:
        self.config = dict(config)
        self.data_dir = Path(self.config["data_dir"])
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file = self.data_dir / f"{name}.yaml"
        self.config_file.write_text(yaml.safe_dump(self.config, allow_unicode=True))
        self.config_file.chmod(0o600)
        self._log = log if log is not None else open(self.data_dir / f"{name}.log", "ab")  # noqa: SIM115
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def health_url(self) -> str | None:
        listen = self.config.get("listen")
        return f"http://{listen}/healthz" if listen else None

    def start(
        self,
        *,
        wait: bool = True,
        timeout: float = 30.0,
        ready: Callable[[], bool] | None = None,
    ) -> ConnectorProcess:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("CONNECTOR_", "DATABASE_", "REDIS_", "COS_"))
        }
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "layers" / "common")])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "connector", "run", "--config", str(self.config_file)],
            cwd=str(self.data_dir),
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if wait:
            self.wait_ready(timeout, ready=ready)
        return self

    def wait_ready(self, timeout: float = 30.0, ready: Callable[[], bool] | None = None) -> None:
        """Until `ready()` is true (e.g. the cloud saw the relay's first poll); by default,
        a tunnel connector's /healthz answers 200, a relay one has run for a second."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(
                    f"the connector exited with {self.process and self.process.returncode}; "
                    f"see {self.data_dir}"
                )
            if ready is not None:
                if ready():
                    return
            elif self.health_url is None:
                if time.monotonic() - started > 1.0:
                    return
            else:
                if _healthy(self.health_url):
                    return
            time.sleep(0.1)
        raise TimeoutError("the connector did not become ready")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not stop in time; the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as when the host loses power."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def pause(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def rss_bytes(self) -> int:
        """Current resident set size (Linux /proc)."""
        if self.process is None:
            return 0
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def peak_rss_bytes(self) -> int:
        """Peak resident set size so far (VmHWM)."""
        if self.process is None:
            return 0
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used so far (Linux /proc)."""
        if self.process is None:
            return 0.0
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return 0.0

    def __enter__(self) -> ConnectorProcess:
        if self.process is not None and self.process.poll() is None:
            return self  # already started (``with ConnectorProcess(...).start(...)``)
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _healthy(url: str) -> bool:
    if not url.startswith("http://"):
        raise ValueError("the health URL must be http://")
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - http only
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False
