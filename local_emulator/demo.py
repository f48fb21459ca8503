"""The demo scenario: what an operator does first, through the emulator's HTTP gateway."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib import error, request

DEMO_TENANT = "Demo Co"


def run(emulator: Any) -> None:
    from local_emulator.local_env import local_secrets

    base = emulator.url
    operator_key = local_secrets(emulator.data_dir)["OPERATOR_KEY"]
    client = _Client(base)
    _section(f"hybrid-sync local emulator at {base}")
    tenant = _demo_tenant(client, operator_key)
    key = client.call(
        "POST",
        f"/api/v1/admin/tenants/{tenant['id']}/api-keys",
        operator_key,
        {"name": "demo admin", "scopes": ["admin", "ingest:write", "jobs:write", "status:read"]},
    )
    connector = client.call(
        "POST",
        "/api/v1/admin/connectors",
        key["key"],
        {
            "name": f"demo-edge-{key['id'][-4:]}",
            "transport": "relay",
            "sources": [{"name": "erp", "engine": "postgresql", "description": "demo ERP"}],
        },
    )
    quota = client.call(
        "PUT",
        f"/api/v1/admin/tenants/{tenant['id']}/quota",
        operator_key,
        {"daily_records": 1_000_000, "monthly_records": 20_000_000, "rpm": 600},
    )
    receipts = _push_demo(client, key["key"])
    pull = _pull_demo(emulator, client, key["key"], connector)
    cache = _cache_demo(client, key["key"], connector)
    inbox = _outage_demo(
        emulator,
        client,
        key["key"],
        connector,
        pull["process"],
        while_down=lambda: cache.extend(_cache_demo(client, key["key"], connector, max_age=0)),
    )
    tokens = _token_demo(client, operator_key, local_secrets(emulator.data_dir)["INTERNAL_API_KEY"])
    audit = client.call("GET", "/api/v1/admin/audit?limit=15", key["key"])
    _section("demo credentials (local only)")
    print(f"  operator key      {operator_key}")
    print(f"  tenant            {tenant['id']} ({tenant['name']})")
    print(f"  tenant API key    {key['key']}  scopes={','.join(key['scopes'])}")
    print(f"  connector         {connector['id']} ({connector['transport']})")
    print(f"  connector secret  {connector['secret']}  (shown once)")
    print(f"  quota             {json.dumps({k: quota[k] for k in ('daily_records', 'rpm')})}")
    _section("pushes and their receipts")
    for label, receipt in receipts:
        counts = {
            k: receipt.get(k)
            for k in ("accepted", "inserted", "updated", "unchanged", "conflicts")
            if k in receipt
        }
        print(
            f"  {label:<9} {receipt.get('receipt_id') or receipt.get('upload_id')}  "
            f"{json.dumps(counts)}"
        )
    _section("a pull through the on-prem connector (relay mode: it only calls out)")
    print(f"  customer database  {pull['database']} (stays on-prem: only masked rows leave)")
    print(f"  connector process  pid {pull['pid']}, log {pull['log']}")
    execution = pull["execution"]
    print(
        f"  sync job           {pull['job_id']}  execution {execution['execution_id']}: "
        f"{execution['status']}, {execution['records_succeeded']} rows stored"
    )
    print("  on-prem row                                   ->  what the cloud stored")
    for raw, stored in pull["samples"]:
        print(f"    {raw['name']} {raw['phone']} {raw['id_card']}  ->  ", end="")
        print(f"{stored['name']} {stored['phone']} {stored['id_card']}")
    _section("a hot query cached in Redis (masked rows only; stale-if-error while it is down)")
    for line in cache:
        print(f"  {line}")
    _section("the connector goes down and comes back (the demo fast-forwards the clock)")
    print("  notifications received by the local inbox (a signed webhook channel):")
    for note in inbox:
        print(f"    {note.get('status', '?'):<9} {note.get('title', '')}")
    _section("upstream API tokens leased under their limits (token-pick, internal key)")
    for line in tokens:
        print(f"  {line}")
    _section("recent audit entries")
    for entry in audit["entries"]:
        print(f"  {entry['at']}  {entry['action']:<18} {entry['target_id']}  by {entry['actor']}")
    _section("try it")
    print(f"  curl -s -H 'Authorization: Bearer {key['key']}' {base}/api/v1/admin/connectors")
    print(f"  curl -s -H 'Authorization: Bearer {operator_key}' {base}/api/v1/admin/tenants")
    print(
        f"  curl -s -X POST -H 'Authorization: Bearer {key['key']}' "
        f"{base}/api/v1/sync/jobs/{pull['job_id']}/run"
    )
    print(
        f"  curl -s -H 'Authorization: Bearer {key['key']}' "
        f"{base}/api/v1/sync/jobs/{pull['job_id']}/executions"
    )
    print(
        f"  curl -s -X POST {base}/api/v1/sync/push/batch -H 'Authorization: Bearer {key['key']}'"
        ' -H \'Content-Type: application/json\' -d \'{"source": "crm", "records": '
        '[{"key": "cust-9", "updated_at": "2026-11-23T08:00:00Z", '
        '"data": {"name": "王五"}}]}\''
    )


def _push_demo(client: _Client, key: str) -> list[tuple[str, dict[str, Any]]]:
    """A batch, a signed webhook and a file upload, each followed by its receipt or status."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    batch = client.call(
        "POST",
        "/api/v1/sync/push/batch",
        key,
        {
            "source": "crm",
            "records": [
                {"key": "cust-1", "updated_at": now, "data": {"name": "张三", "city": "上海"}},
                {"key": "cust-2", "updated_at": now, "data": {"name": "李四", "city": "深圳"}},
            ],
        },
        headers={"Idempotency-Key": f"demo-{uuid.uuid4()}"},
    )
    receipt = client.call("GET", f"/api/v1/sync/receipts/{batch['receipt_id']}", key)
    source = client.call(
        "POST",
        "/api/v1/admin/sources",
        key,
        {"name": f"shop-{uuid.uuid4().hex[:6]}", "webhooks": True, "webhook_key_path": "order_id"},
    )
    payload = json.dumps({"order_id": "A-1001", "total": "99.00"}).encode()
    msg_id, stamp = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
    webhook = client.call(
        "POST",
        source["webhook_path"],
        None,
        raw=payload,
        headers={
            "webhook-id": msg_id,
            "webhook-timestamp": stamp,
            "webhook-signature": _sign(source["webhook_secret"], msg_id, stamp, payload),
        },
    )
    webhook_receipt = client.call("GET", f"/api/v1/sync/receipts/{webhook['receipt_id']}", key)
    lines = [
        json.dumps({"key": f"sku-{i}", "updated_at": now, "data": {"qty": i}}) for i in range(1000)
    ]
    upload = client.call(
        "POST",
        "/api/v1/sync/push/file",
        key,
        {"source": "erp", "filename": "stock.ndjson.gz", "format": "ndjson", "compression": "gzip"},
    )
    content = gzip.compress("\n".join(lines).encode())
    put = request.Request(upload["upload_url"], data=content, method="PUT")  # noqa: S310
    with request.urlopen(put, timeout=30):  # noqa: S310 - the emulator's presigned URL
        pass
    status: dict[str, Any] = {}
    for _ in range(100):
        status = client.call("GET", f"/api/v1/sync/push/file/{upload['upload_id']}", key)
        if status["status"] in {"done", "failed"}:
            break
        time.sleep(0.2)
    return [("batch", receipt), ("webhook", webhook_receipt), ("file", status)]


def _pull_demo(
    emulator: Any, client: _Client, key: str, connector: dict[str, Any]
) -> dict[str, Any]:
    """A customer database full of fake PII, the connector in relay mode, a sync job run now.

    The connector keeps running (and polling) while the emulator serves; it stops with it.
    """
    import atexit

    from local_emulator.connector_process import ConnectorProcess, connector_config
    from local_emulator.customer_db import CustomerDatabase, run_sql

    customer = CustomerDatabase.create(emulator.endpoints.env()["DATABASE_URL"], "demo_customer")
    customer.fill(500, faker=True, seed=2026)
    config = connector_config(
        connector_id=connector["id"],
        secret=connector["secret"],
        transport="relay",
        data_dir=emulator.data_dir / "demo-connector",
        sources=customer.connector_sources(),
        cloud_url=emulator.url,
        poll_wait=20,
    )
    process = ConnectorProcess(config)
    process.start()
    atexit.register(process.stop)
    job = client.call(
        "POST",
        "/api/v1/sync/jobs",
        key,
        {
            "name": f"customers-{connector['id'][-4:]}",
            "connector_id": connector["id"],
            "source": "erp",
            "table": "customers",
            "cursor_column": "updated_at",
            "key_columns": ["id"],
            "schedule": "every 5m",
            "page_rows": 100,
        },
    )
    run = client.call("POST", f"/api/v1/sync/jobs/{job['id']}/run", key)
    execution: dict[str, Any] = {}
    for _ in range(300):
        found = client.call("GET", f"/api/v1/sync/jobs/{job['id']}/executions", key)
        execution = next(e for e in found if e["execution_id"] == run["execution_id"])
        if execution["status"] != "running":
            break
        time.sleep(0.2)
    samples = []
    columns = ("name", "phone", "id_card")
    raw_rows = customer.run("SELECT id, name, phone, id_card FROM customers ORDER BY id LIMIT 3")
    cloud_url = emulator.endpoints.env()["DATABASE_URL"]
    for row in raw_rows:
        stored = run_sql(
            cloud_url,
            "SELECT data FROM records WHERE entity = 'customers' AND key = :key "
            "AND source = 'erp' ORDER BY updated_at DESC LIMIT 1",
            key=str(row[0]),
        )
        data = stored[0][0] if stored else {}
        samples.append(
            (dict(zip(columns, row[1:], strict=True)), {c: data.get(c, "?") for c in columns})
        )
    return {
        "database": customer.database,
        "pid": process.process.pid if process.process else None,
        "log": process.data_dir / "connector.log",
        "job_id": job["id"],
        "execution": execution,
        "samples": samples,
        "process": process,
    }


def _outage_demo(
    emulator: Any,
    client: _Client,
    key: str,
    connector: dict[str, Any],
    process: Any,
    *,
    while_down: Callable[[], None],
) -> list[dict[str, Any]]:
    """The demo connector goes down and comes back; the notifications land in a local inbox.

    Minutes are fast-forwarded in the database (the heartbeat's age, the group wait and
    interval) instead of waited for; everything else runs as deployed: status-probe's ticks,
    the outbox, the alerting function, a signed webhook to the inbox.
    """
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from local_emulator.customer_db import run_sql

    received: list[dict[str, Any]] = []

    class Inbox(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(json.loads(body).get("data", {}))
            self.send_response(204)
            self.end_headers()

    inbox = ThreadingHTTPServer(("127.0.0.1", 0), Inbox)
    threading.Thread(target=inbox.serve_forever, daemon=True).start()
    cloud_url = emulator.endpoints.env()["DATABASE_URL"]

    def sql(statement: str) -> None:
        run_sql(cloud_url, statement, id=connector["id"])

    def tick(function: str, trigger: str, times: int = 1) -> None:
        for _ in range(times):
            emulator.fire_timer(function, trigger).result()

    def probe(times: int = 1) -> None:
        tick("status_probe", "status-probe-every-minute", times)

    def alerting_after_minutes() -> None:
        tick("alerting", "alerting-every-minute")
        sql(
            "UPDATE alerts SET starts_at = starts_at - interval '10 minutes' "
            "WHERE labels->>'connector_id' = :id"
        )
        run_sql(
            cloud_url,
            "UPDATE alert_groups SET last_notified_at = last_notified_at - interval '10 minutes'",
        )
        tick("alerting", "alerting-every-minute")

    try:
        client.call(
            "POST",
            "/api/v1/alerts/channels",
            key,
            {
                "type": "webhook",
                "name": f"demo-inbox-{uuid.uuid4().hex[:6]}",
                "config": {"url": f"http://127.0.0.1:{inbox.server_address[1]}/inbox",
                           "secret": "whsec_" + base64.b64encode(uuid.uuid4().bytes * 2).decode()},
            },
        )  # fmt: skip
        probe()
        process.stop()
        sql("UPDATE connectors SET last_seen_at = now() - interval '10 minutes' WHERE id = :id")
        while_down()
        probe(3)
        alerting_after_minutes()
        process.start()
        for _ in range(100):
            fresh = run_sql(
                cloud_url,
                "SELECT last_seen_at > now() - interval '5 seconds' FROM connectors WHERE id = :id",
                id=connector["id"],
            )
            if fresh and fresh[0][0]:
                break
            time.sleep(0.2)
        probe(2)
        alerting_after_minutes()
    finally:
        inbox.shutdown()
    return received


def _sign(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks: v1,base64(HMAC-SHA256(base64-decoded secret, id.timestamp.body))."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


CACHE_DEMO_SQL = "SELECT id, name, phone, city FROM customers ORDER BY id LIMIT 3"


def _cache_demo(
    client: _Client, key: str, connector: dict[str, Any], *, max_age: int | None = None
) -> list[str]:
    """The same query through cache-sync: a MISS runs it through the connector, then a HIT;
    with `max_age` (0 while the connector is down) one request that is served STALE."""
    lines = []
    for age in (300, 300) if max_age is None else (max_age,):
        body, headers = client.call_with_headers(
            "POST",
            "/api/v1/hybrid/query",
            key,
            {"connector_id": connector["id"], "source": "erp", "sql": CACHE_DEMO_SQL,
             "params": [], "max_age": age},
        )  # fmt: skip
        first = body["rows"][0] if body["rows"] else []
        lines.append(
            f"X-Cache {headers.get('X-Cache', '?'):<6} Age {headers.get('Age', '?'):>3}  "
            f"{body['row_count']} rows, first {first}"
        )
    return lines


def _token_demo(client: _Client, operator_key: str, internal_key: str) -> list[str]:
    """Two tokens in a pool: leases and releases, then one fails twice and cools down."""
    internal = {"X-Internal-API-Key": internal_key}
    pool = f"demo-{uuid.uuid4().hex[:6]}"
    for name in ("crawler-a", "crawler-b"):
        client.call(
            "POST",
            "/api/v1/tokens",
            operator_key,
            {"pool": pool, "name": name, "secret": f"sk-demo-{uuid.uuid4().hex}",
             "rpm": 30, "rph": 600, "rpd": 5000, "concurrency": 2, "rotate_after": 2},
        )  # fmt: skip
    lines: list[str] = []
    failing: str | None = None
    failures = 0
    while failures < 2:
        lease = client.call("POST", "/api/v1/tokens/pick", None, {"pool": pool}, headers=internal)
        failing = failing or lease["token_id"]
        outcome = "failure" if lease["token_id"] == failing else "success"
        failures += outcome == "failure"
        client.call(
            "POST",
            "/api/v1/tokens/release",
            None,
            {"lease_id": lease["lease_id"], "outcome": outcome, "latency_ms": 120},
            headers=internal,
        )
        lines.append(
            f"lease …{lease['lease_id'][-10:]}  token {lease['token_id']}  "
            f"not before {lease['not_before'][11:23]}  -> {outcome}"
        )
    for token in client.call("GET", f"/api/v1/tokens?pool={pool}", operator_key)["tokens"]:
        cooldown = token["cooldown_until"] or "-"
        lines.append(
            f"{token['name']:<10} {token['status']:<7} risk {token['risk']:.2f}  "
            f"used this minute {token['usage']['minute']}  cooldown until {cooldown}"
        )
    return lines


def _demo_tenant(client: _Client, operator_key: str) -> dict[str, Any]:
    """The demo tenant, created on the first run and found again on later ones."""
    try:
        created: dict[str, Any] = client.call(
            "POST", "/api/v1/admin/tenants", operator_key, {"name": DEMO_TENANT}
        )
        return created
    except DemoError as exc:
        if exc.status != 409:
            raise
    tenants = client.call("GET", "/api/v1/admin/tenants", operator_key)["tenants"]
    return next(t for t in tenants if t["name"] == DEMO_TENANT)


class DemoError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status


class _Client:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def call(
        self,
        method: str,
        path: str,
        token: str | None,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        return self.call_with_headers(method, path, token, body, raw=raw, headers=headers)[0]

    def call_with_headers(
        self,
        method: str,
        path: str,
        token: str | None,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[Any, dict[str, str]]:
        data = json.dumps(body).encode() if body is not None else raw
        req = request.Request(self.base + path, data=data, method=method)  # noqa: S310 - the emulator URL
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with request.urlopen(req, timeout=30) as resp:  # noqa: S310 - the emulator's URL
                text = resp.read().decode()
                answered = dict(resp.headers.items())
        except error.HTTPError as exc:
            raise DemoError(exc.code, exc.read().decode()) from None
        return (json.loads(text) if text else None), answered


def _section(title: str) -> None:
    print(f"\n== {title}")
