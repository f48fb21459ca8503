"""Run the project's functions locally: `serve`, `invoke` one function, or run the `demo`."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib
import json
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from local_emulator import LOCAL_APPID
from local_emulator.descriptor import (
    ApigwTrigger,
    DescriptorError,
    FunctionSpec,
    ProjectSpec,
    load_project,
    referenced_env_names,
)
from local_emulator.emulator import (
    REPO_ROOT,
    Emulator,
    default_data_dir,
    layer_paths,
    start_stack_for,
)
from local_emulator.local_env import function_environment

STACK_VARS = ("DATABASE_URL", "REDIS_URL")
TRIGGER_CHOICES = ("http", "timer", "cos", "queue")


def _configure_logging(stream: Any) -> None:
    logging.basicConfig(stream=stream, level=logging.INFO, format="%(message)s", force=True)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--project",
        type=Path,
        default=REPO_ROOT / "serverless.yml",
        help="the serverless.yml to run (default: the repository's)",
    )
    common.add_argument(
        "--data-dir", type=Path, default=None, help="default: $HYBRID_DATA_DIR or .local/"
    )

    parser = argparse.ArgumentParser(prog="python -m local_emulator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", parents=[common], help="run everything until Ctrl-C")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument("--no-stack", action="store_true", help="do not start PostgreSQL/Redis/COS")

    invoke = commands.add_parser("invoke", parents=[common], help="run one function once")
    invoke.add_argument("function", help="function key (push_ingest) or SCF name (push-ingest)")
    source = invoke.add_mutually_exclusive_group()
    source.add_argument("--event", type=Path, help="a JSON event file")
    source.add_argument("--trigger", choices=TRIGGER_CHOICES, help="generate an event of this kind")
    invoke.add_argument("--method", default="GET")
    invoke.add_argument("--path", help="HTTP path (http), object key (cos)")
    invoke.add_argument("--body", help="HTTP body, queue message body, or the direct event (JSON)")
    invoke.add_argument("--header", action="append", default=[], metavar="K:V")

    demo = commands.add_parser("demo", parents=[common], help="start everything and run the demo")
    demo.add_argument("--port", type=int, default=8787)
    demo.add_argument("--exit", action="store_true", help="stop after the demo instead of serving")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    try:
        if args.command == "serve":
            return _serve(args.project, data_dir, args.port, not args.no_stack)
        if args.command == "invoke":
            return _invoke(args, data_dir)
        return _demo(args.project, data_dir, args.port, not args.exit)
    except DescriptorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a busy port, a missing event file
        print(f"error: {exc}", file=sys.stderr)
        return 1


# --- serve / demo -------------------------------------------------------------------------------


def _serve(project: Path, data_dir: Path, port: int, with_stack: bool) -> int:
    _configure_logging(sys.stdout)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Emulator(project, data_dir, port=port, start_stack=with_stack) as emulator:
            print(f"gateway: {emulator.url}", flush=True)
            if emulator.endpoints is not None:
                for name, value in emulator.endpoints.describe().items():
                    print(f"  {name}={value}")
            for line in emulator.describe():
                print(f"  {line}")
            print("running; Ctrl-C to stop", flush=True)
            stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _demo(project: Path, data_dir: Path, port: int, keep_serving: bool) -> int:
    """Start everything, run the demo scenario, then keep serving (unless told to exit) so the
    printed URLs and credentials can be tried."""
    _configure_logging(sys.stdout)
    demo = importlib.import_module("local_emulator.demo")
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda _signum, _frame: stop.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        try:
            emulator = Emulator(project, data_dir, port=port).start()
        except OSError:
            # The default port is taken (another emulator?): any free one will do for a demo.
            emulator = Emulator(project, data_dir, port=0).start()
        try:
            print(f"gateway: {emulator.url}", flush=True)
            demo.run(emulator)
            if keep_serving:
                print(f"\nserving at {emulator.url}; Ctrl-C to stop", flush=True)
                stop.wait()
        finally:
            emulator.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


# --- invoke -------------------------------------------------------------------------------------


def _needs_stack(spec: FunctionSpec) -> bool:
    names = set(spec.environment)
    for value in spec.environment.values():
        names.update(referenced_env_names(value))
    return any(name in STACK_VARS or name.startswith("COS_") for name in names)


def _invoke(args: argparse.Namespace, data_dir: Path) -> int:
    _configure_logging(sys.stderr)
    stack = None
    overrides: dict[str, str] = {}
    try:
        spec = load_project(args.project).function(args.function)
        stack_env: dict[str, str] = {}
        if _needs_stack(spec):
            endpoints, stack = start_stack_for(data_dir, os.environ, None)
            stack_env = endpoints.env()
            from infra.migrate import upgrade

            upgrade(stack_env["DATABASE_URL"])
        overrides = function_environment(data_dir, stack_env, os.environ)
        project = load_project(args.project, overrides)
        spec = project.functions[spec.key]
        event, trigger, request_id = _event_for(args, project, spec)
        from local_emulator.invoker import Invoker

        invoker = Invoker(
            project,
            {spec.key: spec.resolved_environment(overrides)},
            layer_paths=layer_paths(args.project),
            worker_stdout=sys.stderr.fileno(),
        )
        try:
            result = invoker.invoke(spec.key, event, trigger=trigger, request_id=request_id)
        finally:
            invoker.close()
    except LookupError as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    finally:
        if stack is not None:
            stack.stop()
    print(json.dumps(result.to_dict(), indent=2), flush=True)
    return 0 if result.ok else 1


def _first(spec: FunctionSpec, *kinds: str) -> Any:
    for trigger in spec.triggers:
        if trigger.kind in kinds:
            return trigger
    raise LookupError(f"{spec.key} has no {' or '.join(kinds)} trigger")


def _event_for(
    args: argparse.Namespace, project: ProjectSpec, spec: FunctionSpec
) -> tuple[Any, str, str]:
    request_id = str(uuid.uuid4())
    if args.event is not None:
        return json.loads(args.event.read_text(encoding="utf-8")), "direct", request_id
    if args.trigger is None:
        return (json.loads(args.body) if args.body else {}), "direct", request_id
    body = args.body or ""
    if args.trigger == "http":
        return _http_event(args, project, spec, body, request_id)
    if args.trigger == "timer":
        from local_emulator.scheduler import timer_event

        when = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        return timer_event(_first(spec, "timer"), when), "timer", request_id
    if args.trigger == "cos":
        from local_emulator.cos_events import cos_event

        trigger = _first(spec, "cos")
        bucket = trigger.bucket if trigger.bucket_appid else f"{trigger.bucket}-{LOCAL_APPID}"
        notification = {
            "event_name": "cos:ObjectCreated:Put",
            "bucket": bucket,
            "key": args.path or f"{trigger.prefix}example{trigger.suffix}",
            "size": len(body.encode()),
            "etag": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
            "source_ip": "127.0.0.1",
            "request_id": request_id,
        }
        event = cos_event(
            notification,
            region=project.region,
            function_name=spec.name,
            namespace=project.namespace,
        )
        return event, "cos", request_id
    from local_emulator.queue import cmq_event, tdmq_event

    trigger = _first(spec, "eventbridge", "cmq")
    message: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "body": body,
        "tags": [],
        "published_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    if trigger.kind == "cmq":
        return cmq_event(message, trigger), "cmq", request_id
    return tdmq_event(message, trigger, project.region), "eventbridge", request_id


def _http_event(
    args: argparse.Namespace, project: ProjectSpec, spec: FunctionSpec, body: str, request_id: str
) -> tuple[Any, str, str]:
    from local_emulator.gateway import Router, api_gateway_event, function_url_event

    trigger = _first(spec, "http", "apigw")
    if args.path:
        target = urlsplit(args.path)
        path, query = target.path, target.query
    else:
        path = trigger.path if isinstance(trigger, ApigwTrigger) else trigger.paths[0]
        query = ""
    headers = [("Host", "127.0.0.1"), ("User-Agent", "local-emulator-cli")]
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep:
            raise LookupError(f"--header {item!r} must look like Name:value")
        headers.append((name.strip(), value.strip()))
    data = body.encode()
    if data:
        headers.append(("Content-Length", str(len(data))))
    common: dict[str, Any] = {
        "method": args.method,
        "path": path,
        "query_string": query,
        "headers": headers,
        "body": data,
        "source_ip": "127.0.0.1",
        "request_id": request_id,
    }
    route = Router(project).match(args.method, path)
    if route is not None and isinstance(route.trigger, ApigwTrigger) and route.function == spec.key:
        event = api_gateway_event(
            trigger=route.trigger, path_parameters=route.path_parameters, **common
        )
        return event, "apigw", request_id
    if isinstance(trigger, ApigwTrigger):
        event = api_gateway_event(trigger=trigger, path_parameters={}, **common)
        return event, "apigw", request_id
    return function_url_event(**common), "http", request_id
