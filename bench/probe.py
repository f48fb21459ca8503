"""One status-probe tick over 1,000 tunnel connectors: how long it takes.

Each simulated connector is a path on one loopback HTTP server (``/c/<id>/v1/health``) that
checks the cloud's signature with that connector's secret, sleeps its injected latency
(20–200 ms) and answers a signed health report with two sources. Some connectors are dead: a
closed port (connection refused) or a server that accepts and never answers (the probe's
timeout). The tick runs through status-probe's real handler (timer event) against the
embedded PostgreSQL and Redis, and stores every state and sample. Target (issue 5): the tick
of 1,000 connectors well inside a minute, under 10 s.

    python bench/probe.py [--connectors 1000] [--dead 0.05] [--hung 0.01] [--json] [--check]
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
for extra in (REPO_ROOT / "layers" / "common", REPO_ROOT):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

TARGET_S = 10.0
ENCRYPTION_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


class _Fleet(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, secrets: dict[str, str], latency_ms: dict[str, float]) -> None:
        super().__init__(("127.0.0.1", 0), _Connector)
        self.secrets = secrets
        self.latency_ms = latency_ms


class _Connector(BaseHTTPRequestHandler):
    server: _Fleet

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        from hybrid.signing import WebhookVerificationError, signed_headers, verify_request

        parts = self.path.split("/")
        connector_id = parts[2] if len(parts) > 3 else ""
        secret = self.server.secrets.get(connector_id)
        try:
            if secret is None:
                raise WebhookVerificationError("unknown", "signature")
            verify_request(dict(self.headers.items()), "GET", self.path, b"", [secret])
        except WebhookVerificationError:
            self.send_response(401)
            self.end_headers()
            return
        time.sleep(self.server.latency_ms[connector_id] / 1000)
        body = json.dumps(
            {
                "status": "ok",
                "version": "bench",
                "spool_depth": 0,
                "sources": [
                    {"name": "erp", "ok": True, "latency_ms": 2},
                    {"name": "crm", "ok": True, "latency_ms": 3},
                ],
            }
        ).encode()
        headers = signed_headers(secret, f"msg_{uuid.uuid4().hex}", int(time.time()), body)
        self.send_response(200)
        for name, value in {**headers, "Content-Type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _hung_server() -> tuple[socket.socket, int]:
    """Accepts connections (the kernel's backlog does) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    return sock, sock.getsockname()[1]


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connectors", type=int, default=1000)
    parser.add_argument("--dead", type=float, default=0.05, help="share refusing connections")
    parser.add_argument("--hung", type=float, default=0.01, help="share never answering")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)

    import logging
    import os

    from local_emulator.stack import LocalStack

    logging.disable(logging.WARNING)
    rng = random.Random(5)
    with tempfile.TemporaryDirectory(prefix="bench-probe-") as tmp, LocalStack(Path(tmp)) as stack:
        endpoints = stack.endpoints
        from infra.migrate import upgrade

        upgrade(endpoints.database_url)
        os.environ.update(
            {
                **endpoints.env(),
                "APP_ENV": "test",
                "LOG_LEVEL": "WARNING",
                "SECRETS_ENCRYPTION_KEY": ENCRYPTION_KEY,
            }
        )
        from hybrid.connectors.registry import Source, create_connector
        from hybrid.crypto import SecretBox
        from hybrid.db import database
        from hybrid.tenants import create_tenant

        secrets: dict[str, str] = {}
        latency: dict[str, float] = {}
        plan: list[tuple[str, str]] = []
        box = SecretBox(ENCRYPTION_KEY)
        hung, hung_port = _hung_server()
        closed = _closed_port()
        with database(endpoints.database_url).transaction() as tx:
            tenant = create_tenant(tx, "bench")
            for index in range(args.connectors):
                roll = rng.random()
                kind = (
                    "dead" if roll < args.dead else "hung" if roll < args.dead + args.hung else "ok"
                )
                connector, secret = create_connector(
                    tx, box, tenant_id=tenant.id, name=f"c{index}", transport="tunnel",
                    endpoint="http://127.0.0.1:1", sources=[Source("erp", "postgresql"),
                    Source("crm", "mysql")],
                )  # fmt: skip
                secrets[connector.id] = secret
                latency[connector.id] = rng.uniform(20, 200)
                plan.append((connector.id, kind))
        fleet = _Fleet(secrets, latency)
        threading.Thread(target=fleet.serve_forever, daemon=True).start()
        with database(endpoints.database_url).transaction() as tx:
            for connector_id, kind in plan:
                port = {"ok": fleet.server_address[1], "dead": closed, "hung": hung_port}[kind]
                tx.execute(
                    "UPDATE connectors SET endpoint = :endpoint WHERE id = :id",
                    id=connector_id,
                    endpoint=f"http://127.0.0.1:{port}/c/{connector_id}",
                )
        import importlib.util

        spec = importlib.util.spec_from_file_location(
            "status_probe_bench", REPO_ROOT / "functions" / "status_probe" / "index.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        event = json.loads((REPO_ROOT / "tests" / "events" / "timer.json").read_text())
        context = {
            "request_id": "bench",
            "time_limit_in_ms": 60_000,
            "function_name": "status-probe",
        }
        ticks = []
        for _ in range(3):
            started = time.perf_counter()
            summary = module.main_handler(event, context)
            ticks.append((time.perf_counter() - started, summary))
        with database(endpoints.database_url).transaction() as tx:
            states = {
                row["state"]: row["n"]
                for row in tx.rows(
                    "SELECT state, count(*) AS n FROM link_states WHERE source = '' GROUP BY state"
                )
            }
        fleet.shutdown()
        hung.close()
    dead = sum(1 for _, kind in plan if kind != "ok")
    result = {
        "connectors": args.connectors,
        "dead_or_hung": dead,
        "tick_s": [round(seconds, 2) for seconds, _ in ticks],
        "states_after_3_ticks": states,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.connectors} connectors ({dead} dead or hung): ticks "
            + ", ".join(f"{s:.2f} s" for s, _ in ticks)
            + f" (target < {TARGET_S:.0f} s); states after 3 ticks: {states}"
        )
    worst = max(seconds for seconds, _ in ticks)
    return 1 if args.check and worst >= TARGET_S else 0


if __name__ == "__main__":
    raise SystemExit(main())
