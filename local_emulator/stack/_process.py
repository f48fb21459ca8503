"""Process, port and secret helpers shared by the embedded servers of the local stack."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


class StackError(RuntimeError):
    """An embedded server could not be prepared, started or stopped."""


# --- ports -----------------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the kernel considers free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def pick_port(preferred: int | None) -> int:
    """The preferred port when it is free, otherwise a new free one."""
    if preferred and port_is_free(preferred):
        return preferred
    return free_port()


# --- processes -------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """True when pid names a live, non-zombie process."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # Field 3 (after the parenthesised command name) is the state; Z is a zombie.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def proc_cmdline(pid: int) -> list[str]:
    """The argv of a process, empty when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def proc_link(pid: int, name: str) -> str:
    """The target of /proc/<pid>/<name> (exe, cwd), empty when it cannot be read."""
    try:
        return os.readlink(f"/proc/{pid}/{name}")
    except OSError:
        return ""


def wait_pid_gone(pid: int, timeout: float) -> bool:
    """Wait until a process that is not our child has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def stop_orphan(pid: int, first_signal: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Stop a server left running by a killed run of this stack (identified by the caller)."""
    for sig, wait in ((first_signal, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if wait_pid_gone(pid, wait):
            return
    raise StackError(f"could not stop leftover process {pid}")


def stop_child(
    proc: subprocess.Popen[Any], first_signal: int = signal.SIGTERM, timeout: float = 15.0
) -> None:
    """Stop a child process: a polite signal first, SIGKILL when it does not exit in time."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(first_signal)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --- persistent state ------------------------------------------------------------------------


class SecretStore:
    """Secrets generated once and kept as 0600 files under <data_dir>/secrets/."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / "secrets"

    def path(self, name: str) -> Path:
        return self.directory / name

    def get(self, name: str, factory: Callable[[], str] | None = None) -> str:
        """The stored secret, created with factory (default: 32 url-safe characters) if missing."""
        path = self.path(name)
        try:
            value = path.read_text().strip()
        except FileNotFoundError:
            value = ""
        if value:
            return value
        value = factory() if factory else secrets.token_urlsafe(24)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        tmp = path.with_name(f".{name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        os.replace(tmp, path)
        return value


class StateFile:
    """Small JSON document (<data_dir>/stack.json) with ports and child pids; no secrets."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "stack.json"

    def read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def section(self, name: str) -> dict[str, Any]:
        value = self.read().get(name)
        return dict(value) if isinstance(value, dict) else {}

    def update(self, name: str, **values: Any) -> None:
        data = self.read()
        section = dict(data.get(name) or {})
        section.update(values)
        data[name] = section
        tmp = self.path.with_name(".stack.json.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)


def python_child_env() -> dict[str, str]:
    """The environment for a ``python -m local_emulator...`` child: this project importable."""
    project_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [project_root, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    env.pop("PYTHONSTARTUP", None)
    return env


def open_log(path: Path) -> int:
    """An append-only file descriptor for a child's output (the caller closes it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


# --- servers left behind by a killed owner ---------------------------------------------------

# How each server is stopped politely: PostgreSQL's fast shutdown is SIGINT.
STOP_SIGNALS = {"postgres": signal.SIGINT, "redis": signal.SIGTERM, "cos": signal.SIGTERM}


def is_stack_server(name: str, pid: int, data_dir: Path) -> bool:
    """True when pid is this data dir's server of that name (not a reused pid)."""
    if not pid_alive(pid):
        return False
    if name == "postgres":
        return proc_link(pid, "exe").endswith("/pginstall/bin/postgres") and str(
            data_dir / "postgres"
        ) in proc_cmdline(pid)
    if name == "redis":
        # redis-server rewrites its title but runs with cwd = its --dir.
        return proc_link(pid, "exe").endswith("/bin/redis-server") and proc_link(pid, "cwd") == str(
            (data_dir / "redis").resolve()
        )
    if name == "cos":
        cmdline = proc_cmdline(pid)
        return "local_emulator.stack.cos" in cmdline and str(data_dir / "cos") in cmdline
    return False


def stop_leftover_servers(data_dir: Path) -> list[str]:
    """Stop the servers recorded in stack.json that still run; the caller holds the lock."""
    stopped = []
    for name, section in StateFile(data_dir).read().items():
        pid = section.get("pid") if isinstance(section, dict) else None
        if isinstance(pid, int) and name in STOP_SIGNALS and is_stack_server(name, pid, data_dir):
            stop_orphan(pid, STOP_SIGNALS[name], timeout=20.0)
            stopped.append(name)
    return stopped
