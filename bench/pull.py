"""Pull throughput end to end: a customer PostgreSQL table pulled through a real connector
process into the cloud's records, once per transport, through the emulator.

The table (`customers`, about 300 bytes a row: name, mobile, ID number, bank card, email,
city, a free-text note holding a phone number, amount, updated_at) lives in its own database in
the embedded PostgreSQL and is read through the read-only role of ``connector/GRANTS.md``; the
connector masks every row (five listed PII columns, `detect` on the rest) and runs the egress
scanner on every chunk. Between the connector and the cloud sits a loopback proxy that counts
the bytes on the wire.

- tunnel: the pull-trigger's minute timer (fired through the emulator) drives the pull,
  calling the connector's ``/v1/query`` page by page;
- relay: the connector long-polls connector-relay and posts chunks, each stored on arrival.

Printed per transport and mode: rows/s end to end (run-now to the execution's success), the
connector's peak RSS, bytes on the wire per row. Low-bandwidth mode runs on the first
`--lb-rows` rows (zstd at a high level is slow to compress; bytes per row do not depend on the
row count once chunks are full). Targets (issue 4): ≥ 20,000 rows/s, connector RSS < 150 MB,
low-bandwidth bytes/row ≤ ½ of normal mode.

    python bench/pull.py [--rows 1000000] [--lb-rows 100000] [--transports tunnel,relay]
                         [--json] [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
for extra in (REPO_ROOT / "layers" / "common", REPO_ROOT):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

TARGET_ROWS_PER_S = 20_000.0
TARGET_RSS_BYTES = 150 * 1024 * 1024
TARGET_LB_RATIO = 0.5


@dataclass
class Run:
    transport: str
    mode: str
    rows: int
    seconds: float
    rows_per_s: float
    connector_peak_rss_mb: float
    connector_cpu_us_per_row: float
    total_cpu_us_per_row: float
    wire_bytes: int
    bytes_per_row: float


class Bench:
    def __init__(self, emulator: Any, workdir: Path) -> None:
        import requests

        from local_emulator.local_env import local_secrets

        self.emulator = emulator
        self.workdir = workdir
        self.http = requests.Session()
        operator = {"Authorization": f"Bearer {local_secrets(emulator.data_dir)['OPERATOR_KEY']}"}
        tenant = self._ok(
            self.http.post(
                f"{emulator.url}/api/v1/admin/tenants",
                json={"name": f"bench {time.time_ns()}"},
                headers=operator,
            )
        )
        key = self._ok(
            self.http.post(
                f"{emulator.url}/api/v1/admin/tenants/{tenant['id']}/api-keys",
                json={"name": "bench", "scopes": ["admin", "jobs:write", "status:read"]},
                headers=operator,
            )
        )
        self.tenant_id = tenant["id"]
        self.auth = {"Authorization": f"Bearer {key['key']}"}
        self._ok(
            self.http.put(
                f"{emulator.url}/api/v1/admin/tenants/{tenant['id']}/quota",
                json={"daily_records": 10**9, "monthly_records": 10**10, "rpm": 100_000},
                headers=operator,
            )
        )

    @staticmethod
    def _ok(response: Any) -> Any:
        if response.status_code >= 300:
            raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
        return response.json()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self._ok(
            self.http.request(method, f"{self.emulator.url}{path}", json=body, headers=self.auth)
        )

    def pull(self, customer: Any, transport: str, *, low_bandwidth: bool, limit: str) -> Run:
        from local_emulator.connector_process import ConnectorProcess, connector_config
        from local_emulator.customer_db import MASKING
        from local_emulator.stack._process import free_port
        from tests.support.fault_proxy import FaultProxy

        name = f"{transport}-{'lb' if low_bandwidth else 'normal'}-{time.time_ns()}"
        gateway_port = int(self.emulator.url.rsplit(":", 1)[1])
        listen_port = free_port()
        proxy = FaultProxy("127.0.0.1", gateway_port if transport == "relay" else listen_port)
        body: dict[str, Any] = {
            "name": name,
            "transport": transport,
            "sources": [{"name": "erp", "engine": "postgresql"}],
        }
        if transport == "tunnel":
            body["endpoint"] = proxy.url
        created = self.call("POST", "/api/v1/admin/connectors", body)
        config = connector_config(
            connector_id=created["id"],
            secret=created["secret"],
            transport=transport,
            data_dir=self.workdir / name,
            sources={
                "erp": {
                    "engine": "postgresql",
                    "url": customer.reader_url,
                    "schema": "public",
                    "allowed_tables": [limit],
                    "masking": {limit: MASKING},
                    "max_bytes": "512MiB",
                }
            },
            cloud_url=proxy.url if transport == "relay" else None,
            listen=f"127.0.0.1:{listen_port}" if transport == "tunnel" else None,
            low_bandwidth=low_bandwidth,
            max_bytes_per_s=0,
            poll_wait=5,
            log_level="WARNING",
        )
        process = ConnectorProcess(config)
        process.start(ready=(lambda: True) if transport == "relay" else None)
        try:
            job = self.call(
                "POST",
                "/api/v1/sync/jobs",
                {
                    "name": name,
                    "connector_id": created["id"],
                    "source": "erp",
                    "table": limit,
                    "cursor_column": "updated_at",
                    "key_columns": ["id"],
                    "page_rows": 5000,
                },
            )
            rows = int(customer.run(f"SELECT count(*) FROM {limit}")[0][0])
            cpu_before = process.cpu_seconds()
            machine_before = _machine_cpu_seconds()
            started = time.perf_counter()
            execution_id = self.call("POST", f"/api/v1/sync/jobs/{job['id']}/run")["execution_id"]
            execution = self._wait(job["id"], execution_id, transport)
            seconds = time.perf_counter() - started
            if execution["status"] != "success" or execution["records_processed"] != rows:
                raise RuntimeError(f"the pull did not complete: {execution}")
            peak = process.peak_rss_bytes()
            connector_cpu = process.cpu_seconds() - cpu_before
            machine_cpu = _machine_cpu_seconds() - machine_before
        finally:
            process.stop()
            proxy.close()
        wire = proxy.bytes_up if transport == "relay" else proxy.bytes_down
        return Run(
            transport=transport,
            mode="low-bandwidth" if low_bandwidth else "normal",
            rows=rows,
            seconds=round(seconds, 2),
            rows_per_s=round(rows / seconds, 1),
            connector_peak_rss_mb=round(peak / 2**20, 1),
            connector_cpu_us_per_row=round(connector_cpu / rows * 1e6, 1),
            total_cpu_us_per_row=round(machine_cpu / rows * 1e6, 1),
            wire_bytes=wire,
            bytes_per_row=round(wire / rows, 1),
        )

    def _wait(self, job_id: str, execution_id: str, transport: str) -> dict[str, Any]:
        while True:
            if transport == "tunnel":
                self.emulator.fire_timer("pull_trigger", "pull-trigger-every-minute").result()
            found = self.call("GET", f"/api/v1/sync/jobs/{job_id}/executions")
            execution = next(e for e in found if e["execution_id"] == execution_id)
            if execution["status"] != "running":
                return dict(execution)
            time.sleep(0.2)


def _machine_cpu_seconds() -> float:
    """CPU time used on the whole machine (all processes, /proc/stat), in seconds."""
    import os

    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(v) for i, v in enumerate(fields) if i not in (3, 4))  # not idle, iowait
    return busy / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--lb-rows", type=int, default=100_000)
    parser.add_argument("--transports", default="tunnel,relay")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    import logging

    from local_emulator.customer_db import CustomerDatabase
    from local_emulator.emulator import Emulator

    logging.disable(logging.WARNING)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-pull-") as tmp:
        workdir = Path(tmp)
        with (
            open(workdir / "functions.log", "ab") as function_log,
            Emulator(
                REPO_ROOT / "serverless.yml",
                workdir / "emulator",
                env_overrides={"LOG_LEVEL": "WARNING"},
                worker_stdout=function_log,
            ) as emulator,
        ):
            admin_url = emulator.endpoints.env()["DATABASE_URL"]
            customer = CustomerDatabase.create(admin_url, "bench_customer")
            try:
                started = time.perf_counter()
                customer.fill(args.rows, spread_s=86_400)
                customer.run(
                    f"CREATE VIEW customers_lb AS SELECT * FROM customers "
                    f"WHERE id <= {int(args.lb_rows)}"
                )
                customer.run(f'GRANT SELECT ON customers_lb TO "{customer.role}"')
                customer.run("ANALYZE customers")
                avg = customer.run("SELECT avg(pg_column_size(c.*))::int FROM customers c")[0][0]
                print(
                    f"customer table: {args.rows:,} rows, about {avg} bytes a row, "
                    f"loaded in {time.perf_counter() - started:.1f} s",
                    file=sys.stderr,
                )
                bench = Bench(emulator, workdir)
                for transport in args.transports.split(","):
                    runs.append(
                        bench.pull(customer, transport, low_bandwidth=False, limit="customers")
                    )
                    _print(runs[-1], args.json)
                    runs.append(
                        bench.pull(customer, transport, low_bandwidth=False, limit="customers_lb")
                    )
                    _print(runs[-1], args.json)
                    runs.append(
                        bench.pull(customer, transport, low_bandwidth=True, limit="customers_lb")
                    )
                    _print(runs[-1], args.json)
            finally:
                customer.drop()
    failures = _check(runs)
    for failure in failures:
        print(f"MISSED: {failure}", file=sys.stderr)
    return 1 if args.check and failures else 0


def _print(run: Run, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(run)))
        return
    print(
        f"{run.transport:6} {run.mode:13} {run.rows:>9,} rows  {run.seconds:7.1f} s  "
        f"{run.rows_per_s:>9,.0f} rows/s  connector peak RSS {run.connector_peak_rss_mb:6.1f} MB  "
        f"{run.bytes_per_row:6.1f} bytes/row on the wire  CPU/row: connector "
        f"{run.connector_cpu_us_per_row:.0f} µs, machine {run.total_cpu_us_per_row:.0f} µs"
    )


def _check(runs: list[Run]) -> list[str]:
    failures = []
    for run in runs:
        if run.mode == "normal" and run.rows >= 500_000 and run.rows_per_s < TARGET_ROWS_PER_S:
            failures.append(
                f"{run.transport}: {run.rows_per_s:,.0f} rows/s < {TARGET_ROWS_PER_S:,.0f}"
            )
        if run.connector_peak_rss_mb * 2**20 > TARGET_RSS_BYTES:
            failures.append(f"{run.transport} {run.mode}: RSS {run.connector_peak_rss_mb} MB")
    for transport in {run.transport for run in runs}:
        same = [
            r
            for r in runs
            if r.transport == transport
            and r.rows == min(x.rows for x in runs if x.transport == transport)
        ]
        normal = next((r for r in same if r.mode == "normal"), None)
        low = next((r for r in same if r.mode == "low-bandwidth"), None)
        if normal and low:
            ratio = low.bytes_per_row / normal.bytes_per_row
            print(f"{transport}: low-bandwidth bytes/row = {ratio:.2f} of normal", file=sys.stderr)
            if ratio > TARGET_LB_RATIO:
                failures.append(f"{transport}: low-bandwidth ratio {ratio:.2f} > {TARGET_LB_RATIO}")
    return failures


if __name__ == "__main__":
    raise SystemExit(main())
