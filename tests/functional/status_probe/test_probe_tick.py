"""The minute tick: states with hysteresis from stored counts, one alert event per transition
committed with it, ping jobs for relay connectors, the status API and history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any


def _db(probe_env):
    from hybrid.db import database

    return database(probe_env["DATABASE_URL"])


def _heartbeat(probe_env, connector_id: str, *, age_s: float) -> None:
    with _db(probe_env).transaction() as tx:
        tx.execute(
            "UPDATE connectors SET last_seen_at = :at WHERE id = :id",
            id=connector_id,
            at=datetime.now(timezone.utc) - timedelta(seconds=age_s),
        )


def _alerts(probe_env) -> list[dict[str, Any]]:
    with _db(probe_env).transaction() as tx:
        return [
            r["payload"]
            for r in tx.rows("SELECT payload FROM outbox WHERE topic = 'alerts' ORDER BY id")
        ]


def _connector(status, links, connector_id: str) -> dict[str, Any]:
    body = status("GET", "/api/v1/hybrid/status", token=links["key"]).json
    return next(c for c in body["connectors"] if c["id"] == connector_id)


def test_a_silent_relay_connector_goes_down_after_three_ticks_and_up_after_two(
    status, links, probe_env
):
    _heartbeat(probe_env, links["relay"], age_s=5)
    status.tick()
    assert _connector(status, links, links["relay"])["state"] == "connected"
    _heartbeat(probe_env, links["relay"], age_s=600)
    status.tick()
    status.tick()
    assert _connector(status, links, links["relay"])["state"] == "connected"
    status.tick()
    down = _connector(status, links, links["relay"])
    assert down["state"] == "disconnected"
    assert down["connected"] is False
    fired = [a for a in _alerts(probe_env) if a["labels"]["connector_id"] == links["relay"]]
    assert len(fired) == 1
    assert fired[0]["status"] == "firing"
    assert fired[0]["labels"]["alertname"] == "ConnectorDisconnected"
    status.tick()  # still down: no second alert
    assert (
        len([a for a in _alerts(probe_env) if a["labels"]["connector_id"] == links["relay"]]) == 1
    )
    _heartbeat(probe_env, links["relay"], age_s=1)
    status.tick()
    assert _connector(status, links, links["relay"])["state"] == "disconnected"
    status.tick()
    assert _connector(status, links, links["relay"])["state"] == "connected"
    relay_alerts = [a for a in _alerts(probe_env) if a["labels"]["connector_id"] == links["relay"]]
    assert [a["status"] for a in relay_alerts] == ["firing", "resolved"]


def test_an_unreachable_tunnel_connector_is_unknown_then_disconnected(status, links, probe_env):
    for _ in range(2):
        status.tick()
        assert _connector(status, links, links["tunnel"])["state"] == "unknown"
    status.tick()
    tunnel = _connector(status, links, links["tunnel"])
    assert tunnel["state"] == "disconnected"
    assert tunnel["last_seen"] is None
    history = status(
        "GET", f"/api/v1/hybrid/status/{links['tunnel']}/history", token=links["key"]
    ).json
    assert [s["ok"] for s in history["samples"]] == [False, False, False]
    assert "unreachable" in history["samples"][0]["error"]


def test_relay_pings_report_each_source_and_the_round_trip(status, links, probe_env):
    _heartbeat(probe_env, links["relay"], age_s=1)
    status.tick()
    with _db(probe_env).transaction() as tx:
        pings = tx.rows("SELECT id, status FROM relay_jobs WHERE kind = 'ping'")
        assert [p["status"] for p in pings] == ["pending"]
        # The connector answers the ping (what connector-relay stores from its chunk).
        tx.execute(
            "UPDATE relay_jobs SET status = 'done', updated_at = created_at + interval '40 ms', "
            "result = CAST(:result AS jsonb) WHERE id = :id",
            id=pings[0]["id"],
            result='{"health": {"sources": [{"name": "erp", "ok": true, "latency_ms": 3}, '
            '{"name": "crm", "ok": false, "error": "connection refused"}]}}',
        )
    status.tick()
    relay = _connector(status, links, links["relay"])
    assert relay["state"] == "degraded"  # up, but one source is down
    assert relay["latency_ms"] == 40.0
    sources = {s["name"]: s for s in relay["sources"]}
    assert sources["erp"]["state"] == "connected"
    assert sources["erp"]["latency_ms"] == 3
    assert sources["crm"]["state"] == "unknown"  # one failed probe: not yet down
    assert sources["crm"]["error"] == "connection refused"
    with _db(probe_env).transaction() as tx:
        assert (
            tx.scalar("SELECT count(*) FROM relay_jobs WHERE kind = 'ping' AND status = 'pending'")
            == 1
        )


def test_status_needs_the_scope_and_shows_only_the_tenants_own(status, links, probe_env):
    from hybrid.auth.store import create_api_key
    from hybrid.tenants import create_tenant

    assert status("GET", "/api/v1/hybrid/status").status == 401
    with _db(probe_env).transaction() as tx:
        other = create_tenant(tx, "Other")
        _k, token = create_api_key(tx, tenant_id=other.id, name="o", scopes=("status:read",))
        _k2, ingest = create_api_key(tx, tenant_id=other.id, name="i", scopes=("ingest:write",))
    assert status("GET", "/api/v1/hybrid/status", token=ingest.token).status == 403
    assert status("GET", "/api/v1/hybrid/status", token=token.token).json["connectors"] == []
    foreign = status("GET", f"/api/v1/hybrid/status/{links['relay']}/history", token=token.token)
    assert foreign.status == 404
    bad = status(
        "GET",
        f"/api/v1/hybrid/status/{links['relay']}/history",
        token=links["key"],
        query={"since": "2026-11-23T10:00:00Z", "until": "2026-11-23T09:00:00Z"},
    )
    assert bad.status == 422


def test_the_latest_states_are_kept_in_redis_too(status, links, probe_env, endpoints):
    import json

    from hybrid.cache import redis_client
    from hybrid.probe.runner import latest_key

    _heartbeat(probe_env, links["relay"], age_s=1)
    status.tick()
    client = redis_client(endpoints.redis_url)
    latest = {
        k.decode(): json.loads(v) for k, v in client.hgetall(latest_key(links["tenant_id"])).items()
    }
    assert latest[links["relay"]][""]["state"] == "connected"
    assert latest[links["tunnel"]][""]["state"] == "unknown"
    assert 0 < client.ttl(latest_key(links["tenant_id"])) <= 300
