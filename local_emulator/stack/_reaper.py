"""Stops a stack's servers when the process that owns the stack dies without stopping them.

``python -m local_emulator.stack._reaper --parent-pid P --data-dir D`` polls for the death of
P, then takes the data dir lock (unless a new stack already holds it: that one cleans up
itself) and stops the servers recorded in D/stack.json. SIGTERM (a normal stop) ends it quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import sys
import time
from pathlib import Path

from local_emulator.stack._process import StackError, stop_leftover_servers

logger = logging.getLogger("local_emulator.stack.reaper")

REAPING_MARKER = ".reaping"


def reap(data_dir: Path) -> None:
    fd = os.open(data_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("data dir taken over by a new stack, nothing to do")
            return
        marker = data_dir / REAPING_MARKER
        marker.touch()
        try:
            stopped = stop_leftover_servers(data_dir)
            logger.warning("owner died, stopped servers=%s", ",".join(stopped) or "-")
        except StackError as exc:
            logger.error("cleanup failed error=%s", exc)
        finally:
            marker.unlink(missing_ok=True)
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    while os.getppid() == args.parent_pid:
        time.sleep(0.5)
    reap(args.data_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
