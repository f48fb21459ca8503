"""The demo scenario: what an operator does first, through the emulator's HTTP gateway."""

from __future__ import annotations

import json
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
        {"name": "demo admin", "scopes": ["admin", "ingest:write", "status:read"]},
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
    audit = client.call("GET", "/api/v1/admin/audit?limit=5", key["key"])
    _section("demo credentials (local only)")
    print(f"  operator key      {operator_key}")
    print(f"  tenant            {tenant['id']} ({tenant['name']})")
    print(f"  tenant API key    {key['key']}  scopes={','.join(key['scopes'])}")
    print(f"  connector         {connector['id']} ({connector['transport']})")
    print(f"  connector secret  {connector['secret']}  (shown once)")
    print(f"  quota             {json.dumps({k: quota[k] for k in ('daily_records', 'rpm')})}")
    _section("recent audit entries")
    for entry in audit["entries"]:
        print(f"  {entry['at']}  {entry['action']:<18} {entry['target_id']}  by {entry['actor']}")
    _section("try it")
    print(f"  curl -s -H 'Authorization: Bearer {key['key']}' {base}/api/v1/admin/connectors")
    print(f"  curl -s -H 'Authorization: Bearer {operator_key}' {base}/api/v1/admin/tenants")


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

    def call(self, method: str, path: str, token: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = request.Request(self.base + path, data=data, method=method)  # noqa: S310 - the emulator URL
        req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with request.urlopen(req, timeout=30) as resp:  # noqa: S310 - the emulator's URL
                text = resp.read().decode()
        except error.HTTPError as exc:
            raise DemoError(exc.code, exc.read().decode()) from None
        return json.loads(text) if text else None


def _section(title: str) -> None:
    print(f"\n== {title}")
