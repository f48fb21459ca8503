"""Run the local stack by hand: ``python -m local_emulator.stack [--data-dir DIR]``.

Prints the endpoints (secrets redacted; they are in DIR/secrets/) and waits for Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from local_emulator.stack.local_stack import describe, resolve_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_emulator.stack", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path(".local/stack"))
    parser.add_argument("--cos-notify-url", default=None)
    parser.add_argument(
        "--use-env",
        action="store_true",
        help="use DATABASE_URL / REDIS_URL / COS_* from the environment instead of embedded ones",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    signal.signal(signal.SIGINT, lambda _sig, _frame: stop.set())
    started = time.monotonic()
    environ = dict(os.environ) if args.use_env else {}
    endpoints, stack = resolve_stack(args.data_dir, environ, cos_notify_url=args.cos_notify_url)
    try:
        info = describe(endpoints, stack)
        info["started_in_s"] = round(time.monotonic() - started, 2)
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write("\nready; Ctrl-C to stop\n")
        sys.stdout.flush()
        stop.wait()
    finally:
        if stack is not None:
            stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
