"""One warm SCF "instance": a subprocess that imports the handler once and serves invocations.

The parent side is `Worker`. The child side is this same file run as a script in isolated mode
(`python -I`), so neither the emulator nor this directory is importable from function code, just
as on SCF. Requests and replies are single JSON lines on two dedicated pipes, which leaves the
function's own stdout and stderr free for its logs. This module imports only the standard library.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

_READ_CHUNK = 1 << 20


class WorkerError(Exception):
    """The worker could not complete a call."""


class WorkerTimeoutError(WorkerError):
    """The call outlived its time limit; the worker has been killed."""


class WorkerExitedError(WorkerError):
    """The worker process ended (or closed its pipe) before replying."""

    def __init__(self, returncode: int | None) -> None:
        super().__init__(f"worker exited with code {returncode}")
        self.returncode = returncode


class WorkerInitError(WorkerError):
    """Importing the handler failed; `error` is the SCF-style error body."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("errorMessage", "init failed"))
        self.error = error


class Worker:
    """Parent-side handle of one worker process."""

    def __init__(
        self,
        *,
        src: Path,
        handler: str,
        layer_paths: Sequence[Path],
        env: Mapping[str, str],
        stdout: int | IO[Any] | None = None,
    ) -> None:
        self._src = Path(src)
        self._handler = handler
        self._layer_paths = [str(p) for p in layer_paths]
        self._env = dict(env)
        self._stdout = stdout
        self._proc: subprocess.Popen[bytes] | None = None
        self._to_child = -1
        self._from_child = -1
        self._buffer = b""

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, init_timeout_s: float) -> None:
        """Spawn the process and wait until the handler module is imported (the cold start)."""
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        config = json.dumps(
            {"src": str(self._src), "handler": self._handler, "layers": self._layer_paths}
        )
        try:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-u",
                    str(Path(__file__).resolve()),
                    str(request_r),
                    str(reply_w),
                    config,
                ],
                pass_fds=(request_r, reply_w),
                env=self._env,
                cwd=self._src,
                stdin=subprocess.DEVNULL,
                stdout=self._stdout,
                stderr=self._stdout,
                start_new_session=True,  # Ctrl-C in the terminal goes to the emulator only
            )
        except OSError:
            for fd in (request_r, request_w, reply_r, reply_w):
                os.close(fd)
            raise
        os.close(request_r)
        os.close(reply_w)
        self._to_child, self._from_child = request_w, reply_r
        reply = self._read(time.monotonic() + init_timeout_s)
        if reply.get("type") != "ready":
            self.kill()
            raise WorkerInitError(reply.get("error") or {"errorMessage": "bad worker handshake"})

    def call(
        self, event: Any, context: dict[str, Any], trigger: str, timeout_s: float
    ) -> dict[str, Any]:
        """One invocation: `{"ok": true, "payload": ...}` or `{"ok": false, "error": {...}}`."""
        deadline = time.monotonic() + timeout_s
        line = json.dumps({"event": event, "context": context, "trigger": trigger}).encode() + b"\n"
        try:
            view = memoryview(line)
            while view:
                written = os.write(self._to_child, view)
                view = view[written:]
        except OSError as exc:
            self.kill()
            raise WorkerExitedError(self._returncode()) from exc
        return self._read(deadline)

    def terminate(self) -> None:
        """SIGKILL the process; safe from any thread (a pending call then sees the pipe close)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    def kill(self) -> None:
        """SIGKILL the process, reap it and close the pipes (only from the thread using it)."""
        self.terminate()
        if self._proc is not None:
            self._proc.wait()
        for fd in (self._to_child, self._from_child):
            if fd >= 0:
                os.close(fd)
        self._to_child = self._from_child = -1

    def _returncode(self) -> int | None:
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return None

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise WorkerTimeoutError("time limit reached")
            if self._from_child < 0:
                raise WorkerExitedError(self._returncode())
            try:
                ready, _, _ = select.select([self._from_child], [], [], remaining)
                chunk = os.read(self._from_child, _READ_CHUNK) if ready else None
            except InterruptedError:
                continue
            if chunk is None:
                continue
            if not chunk:
                code = self._returncode()
                self.kill()
                raise WorkerExitedError(code)
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message


# --- child side ---------------------------------------------------------------------------------


def _user_traceback(exc: BaseException) -> str:
    """The traceback from the first frame outside this file (SCF shows user frames only)."""
    tb = exc.__traceback__
    here = os.path.abspath(__file__)
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == here:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip("\n")


def _error(status: int, message: str, exc: BaseException | None = None) -> dict[str, Any]:
    return {
        "errorCode": -1,
        "errorMessage": message,
        "stackTrace": _user_traceback(exc) if exc is not None else "",
        "statusCode": status,
    }


def _load_handler(spec: str) -> Any:
    module_name, _, attribute = spec.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise LookupError(f"handler module {module_name!r} not found") from exc
        raise
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise LookupError(f"handler {spec!r} not found")
    return handler


def _child_main(argv: list[str]) -> None:
    request_fd, reply_fd, config = int(argv[1]), int(argv[2]), json.loads(argv[3])
    sys.path[:] = [config["src"], *config["layers"], *(p for p in sys.path if p)]
    os.chdir(config["src"])
    requests = os.fdopen(request_fd, "rb")
    replies = os.fdopen(reply_fd, "wb")

    def send(message: dict[str, Any]) -> None:
        replies.write(json.dumps(message).encode() + b"\n")
        replies.flush()

    try:
        handler = _load_handler(config["handler"])
    except LookupError as exc:
        send({"type": "init_error", "error": _error(437, str(exc))})
        return
    except Exception as exc:  # noqa: BLE001 - the runtime reports any user-code failure
        send({"type": "init_error", "error": _error(430, "user code exception caught", exc)})
        return
    send({"type": "ready"})

    for line in requests:
        request = json.loads(line)
        if request["trigger"] == "timer":
            os.environ["TRIGGER_SRC"] = "timer"
        else:
            os.environ.pop("TRIGGER_SRC", None)
        try:
            result = handler(request["event"], request["context"])
        except Exception as exc:  # noqa: BLE001 - the runtime reports any user-code failure
            send({"ok": False, "error": _error(430, "user code exception caught", exc)})
            continue
        try:
            reply = json.dumps({"ok": True, "payload": result}, allow_nan=False)
        except (TypeError, ValueError) as exc:  # SCF cannot serialise it either
            message = f"return value is not JSON serializable: {exc}"
            send({"ok": False, "error": _error(430, message)})
            continue
        replies.write(reply.encode() + b"\n")
        replies.flush()


if __name__ == "__main__":
    _child_main(sys.argv)
