"""``python -m connector [run|doctor|self-test] [--config PATH]``.

- ``run`` (the default): the sources' self-tests first (a source that can write: exit 78,
  the findings are logged), then the configured transport until SIGTERM/SIGINT, which stop
  it cleanly (no new work; the chunk in flight is finished or stays spooled) and exit 0.
- ``doctor [--quick]``: the checks of `connector.doctor`; exit 1 when one failed.
- ``self-test``: only the sources' self-tests.

The configuration file comes from ``--config`` or ``CONNECTOR_CONFIG``; environment variables
override it (see ``connector/config.py``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

from connector import __version__
from connector.config import ConfigError, load_config
from connector.logs import setup_logging

if TYPE_CHECKING:
    from connector.service import QueryService

logger = logging.getLogger("connector")

EX_CONFIG = 78
VERIFY_INTERVAL_S = 30.0


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", default=argparse.SUPPRESS, help="YAML file (default: $CONNECTOR_CONFIG)"
    )
    parser = argparse.ArgumentParser(
        prog="python -m connector",
        description="The hybrid-sync on-prem connector.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", parents=[common], help="run the configured transport (default)")
    doctor = commands.add_parser("doctor", parents=[common], help="check the setup")
    doctor.add_argument(
        "--quick", action="store_true", help="only config and liveness (health checks)"
    )
    commands.add_parser("self-test", parents=[common], help="run the sources' self-tests")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config_path: str | None = getattr(args, "config", None)
    command = args.command or "run"
    if command == "doctor":
        from connector.doctor import run_doctor

        return run_doctor(config_path, quick=args.quick)
    if command == "self-test":
        from connector.doctor import run_self_test

        return run_self_test(config_path)
    return run(config_path)


def run(config_path: str | None) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG
    setup_logging(config.log_level)

    from connector.service import QueryService
    from connector.sources.errors import UnsafeSourceError

    config.data_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    exit_code = 0

    def unsafe_later(exc: UnsafeSourceError) -> None:
        nonlocal exit_code
        exit_code = EX_CONFIG
        stop.set()

    service = QueryService(config, on_unsafe=unsafe_later)
    try:
        try:
            service.startup_self_test()
        except UnsafeSourceError as exc:
            logger.critical(
                "refusing to start: a source can write findings=%s", "; ".join(exc.problems)
            )
            print("refusing to start, a source is not read-only:", file=sys.stderr)
            for problem in exc.problems:
                print(f"  - {problem}", file=sys.stderr)
            return EX_CONFIG

        def on_signal(signum: int, frame: FrameType | None) -> None:
            logger.info("signal received, stopping signal=%s", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        threading.Thread(
            target=_verify_pending, args=(service, stop), name="verify", daemon=True
        ).start()
        logger.info(
            "connector starting version=%s transport=%s sources=%d low_bandwidth=%s",
            __version__,
            config.transport,
            len(config.sources),
            config.low_bandwidth,
        )
        if config.transport == "tunnel":
            from connector.tunnel import serve

            server = serve(config, service)
            stop.wait()
            server.stop()
        else:
            from connector.relay import RelayClient

            client = RelayClient(config, service)
            worker = threading.Thread(target=client.run, name="relay")
            worker.start()
            while worker.is_alive() and not stop.wait(0.5):
                pass
            if not stop.is_set():
                logger.critical("the relay loop ended unexpectedly")
                exit_code = exit_code or 1
            client.stop()
            worker.join()
        logger.info("connector stopped exit_code=%d", exit_code)
        return exit_code
    finally:
        service.close()


def _verify_pending(service: QueryService, stop: threading.Event) -> None:
    """Self-test, every half minute, the sources that could not be reached at start."""
    while not service.ready and not stop.wait(VERIFY_INTERVAL_S):
        service.verify_pending()


if __name__ == "__main__":
    sys.exit(main())
