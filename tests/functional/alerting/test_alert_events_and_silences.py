"""alerting: events swept from the outbox become alerts (firing, then resolved, never undone by
an older event), listed per tenant with the silence that mutes them; silences CRUD."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest


def _event(
    env, tenant_id: str, status: str, *, connector: str = "con_1", at: str | None = None
) -> None:
    from hybrid import outbox
    from hybrid.db import database

    with database(env["DATABASE_URL"]).transaction() as tx:
        outbox.enqueue(
            tx,
            "alerts",
            {
                "kind": "link_state",
                "status": status,
                "severity": "critical",
                "tenant_id": tenant_id,
                "labels": {
                    "alertname": "ConnectorDisconnected",
                    "connector_id": connector,
                    "tenant_id": tenant_id,
                },
                "at": at or datetime.now(timezone.utc).isoformat(),
            },
        )


def test_events_become_one_alert_that_fires_then_resolves(alerting, tenant, env):
    _event(env, tenant["id"], "firing")
    assert alerting.tick() == {
        "recorded": 1,
        "unchanged": 0,
        "failed": 0,
        "expired": 0,
        "outbox_pruned": 0,
        "queued": 0,
        "sent": 0,
        "pending": 0,
        "dead": 0,
    }
    firing = alerting(
        "GET", "/api/v1/alerts", token=tenant["reader"], query={"state": "firing"}
    ).json
    [alert] = firing["alerts"]
    assert alert["labels"]["alertname"] == "ConnectorDisconnected"
    assert alert["severity"] == "critical"
    assert alert["ends_at"] is None
    _event(env, tenant["id"], "resolved")
    assert alerting.tick()["recorded"] == 1
    assert (
        alerting("GET", "/api/v1/alerts", token=tenant["reader"], query={"state": "firing"}).json[
            "alerts"
        ]
        == []
    )
    [resolved] = alerting("GET", "/api/v1/alerts", token=tenant["reader"]).json["alerts"]
    assert resolved["id"] == alert["id"]
    assert resolved["status"] == "resolved"
    assert resolved["ends_at"] is not None
    assert alerting.tick() == {
        "recorded": 0,
        "unchanged": 0,
        "failed": 0,
        "expired": 0,
        "outbox_pruned": 0,
        "queued": 0,
        "sent": 0,
        "pending": 0,
        "dead": 0,
    }  # nothing left


def test_an_older_event_replayed_late_does_not_undo_a_newer_state(alerting, tenant, env):
    from hybrid.alerts import store
    from hybrid.db import database

    _event(env, tenant["id"], "firing")
    _event(env, tenant["id"], "resolved")
    alerting.tick()
    with database(env["DATABASE_URL"]).transaction() as tx:
        first_id = tx.scalar("SELECT min(id) FROM outbox")
        late = store.record_event(
            tx,
            {
                "tenant_id": tenant["id"],
                "status": "firing",
                "labels": {
                    "alertname": "ConnectorDisconnected",
                    "connector_id": "con_1",
                    "tenant_id": tenant["id"],
                },
            },
            event_id=first_id,
            at=datetime.now(timezone.utc),
        )
    assert late is None
    [alert] = alerting("GET", "/api/v1/alerts", token=tenant["reader"]).json["alerts"]
    assert alert["status"] == "resolved"


def test_a_malformed_event_is_set_aside_and_does_not_block_the_rest(alerting, tenant, env):
    from hybrid import outbox
    from hybrid.db import database

    with database(env["DATABASE_URL"]).transaction() as tx:
        outbox.enqueue(tx, "alerts", {"tenant_id": tenant["id"], "status": "firing"})  # no labels
    _event(env, tenant["id"], "firing")
    assert alerting.tick() == {
        "recorded": 1,
        "unchanged": 0,
        "failed": 1,
        "expired": 0,
        "outbox_pruned": 0,
        "queued": 0,
        "sent": 0,
        "pending": 0,
        "dead": 0,
    }
    with database(env["DATABASE_URL"]).transaction() as tx:
        kept = tx.one(
            "SELECT attempts, last_error, done_at FROM outbox WHERE payload->'labels' IS NULL"
        )
    assert kept["done_at"] is None
    assert kept["last_error"] == "AlertEventError"


def test_silences_mute_matching_alerts_until_they_end(alerting, tenant, env):
    _event(env, tenant["id"], "firing", connector="con_1")
    _event(env, tenant["id"], "firing", connector="con_2")
    alerting.tick()
    created = alerting(
        "POST",
        "/api/v1/alerts/silences",
        token=tenant["admin"],
        body={
            "matchers": {"connector_id": "con_1"},
            "ends_at": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat(),
            "comment": "maintenance",
        },
    )
    assert created.status == 201, created.body
    assert created.json["state"] == "active"
    alerts = {
        a["labels"]["connector_id"]: a
        for a in alerting("GET", "/api/v1/alerts", token=tenant["reader"]).json["alerts"]
    }
    assert alerts["con_1"]["silenced_by"] == created.json["id"]
    assert alerts["con_2"]["silenced_by"] is None
    listed = alerting("GET", "/api/v1/alerts/silences", token=tenant["admin"]).json["silences"]
    assert [s["id"] for s in listed] == [created.json["id"]]
    assert (
        alerting(
            "DELETE", f"/api/v1/alerts/silences/{created.json['id']}", token=tenant["admin"]
        ).status
        == 204
    )
    alerts = {
        a["labels"]["connector_id"]: a
        for a in alerting("GET", "/api/v1/alerts", token=tenant["reader"]).json["alerts"]
    }
    assert alerts["con_1"]["silenced_by"] is None
    assert (
        alerting(
            "DELETE", f"/api/v1/alerts/silences/{created.json['id']}", token=tenant["admin"]
        ).status
        == 404
    )


def test_a_silence_that_has_ended_mutes_nothing(alerting, tenant, env):
    _event(env, tenant["id"], "firing")
    alerting.tick()
    now = datetime.now(timezone.utc)
    alerting(
        "POST",
        "/api/v1/alerts/silences",
        token=tenant["admin"],
        body={
            "matchers": {"alertname": "ConnectorDisconnected"},
            "starts_at": (now - timedelta(hours=2)).isoformat(),
            "ends_at": (now - timedelta(hours=1)).isoformat(),
        },
    )
    [alert] = alerting("GET", "/api/v1/alerts", token=tenant["reader"]).json["alerts"]
    assert alert["silenced_by"] is None
    assert alerting("GET", "/api/v1/alerts/silences", token=tenant["admin"]).json["silences"] == []
    expired = alerting(
        "GET", "/api/v1/alerts/silences", token=tenant["admin"], query={"expired": "true"}
    ).json
    assert [s["state"] for s in expired["silences"]] == ["expired"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"matchers": {}, "ends_at": "2030-01-01T00:00:00Z"}, 422),
        ({"matchers": {"a": "b"}}, 422),
        ({"matchers": {"a": "b"}, "ends_at": "2030-01-01T00:00:00"}, 422),
        (
            {
                "matchers": {"a": "b"},
                "starts_at": "2030-01-02T00:00:00Z",
                "ends_at": "2030-01-01T00:00:00Z",
            },
            422,
        ),
        ({"matchers": {"a": 1}, "ends_at": "2030-01-01T00:00:00Z"}, 422),
    ],
)
def test_a_bad_silence_gets_a_422_and_nothing_is_stored(alerting, tenant, body, status):
    result = alerting("POST", "/api/v1/alerts/silences", token=tenant["admin"], body=body)
    assert result.status == status, result.body
    assert result.content_type.startswith("application/problem+json")
    assert (
        alerting(
            "GET", "/api/v1/alerts/silences", token=tenant["admin"], query={"expired": "true"}
        ).json["silences"]
        == []
    )


def test_scopes_and_tenants(alerting, tenant, env):
    from hybrid.auth.store import create_api_key
    from hybrid.db import database
    from hybrid.tenants import create_tenant

    _event(env, tenant["id"], "firing")
    alerting.tick()
    assert alerting("GET", "/api/v1/alerts").status == 401
    body = {"matchers": {"a": "b"}, "ends_at": "2030-01-01T00:00:00Z"}
    assert (
        alerting("POST", "/api/v1/alerts/silences", token=tenant["reader"], body=body).status == 403
    )
    with database(env["DATABASE_URL"]).transaction() as tx:
        other = create_tenant(tx, "Other")
        _k, token = create_api_key(
            tx, tenant_id=other.id, name="o", scopes=("admin", "status:read")
        )
    assert alerting("GET", "/api/v1/alerts", token=token.token).json["alerts"] == []
    mine = alerting("POST", "/api/v1/alerts/silences", token=tenant["admin"], body=body).json
    assert (
        alerting("DELETE", f"/api/v1/alerts/silences/{mine['id']}", token=token.token).status == 404
    )


def test_delivered_outbox_items_are_deleted_after_forty_days(alerting, tenant, env):
    from hybrid.db import database

    _event(env, tenant["id"], "firing")
    _event(env, tenant["id"], "resolved", connector="con_2")
    with database(env["DATABASE_URL"]).transaction() as tx:
        tx.execute(
            "INSERT INTO outbox (topic, payload, done_at) VALUES "
            "('archive', '{}', now() - interval '41 days'), "
            "('archive', '{}', now() - interval '39 days'), ('archive', '{}', NULL)"
        )
    summary = alerting.tick()
    assert summary["outbox_pruned"] == 1
    with database(env["DATABASE_URL"]).transaction() as tx:
        left = tx.scalar("SELECT count(*) FROM outbox")
    assert left == 4  # two swept alert events (done today), the 39-day-old one, the pending one


def test_a_disconnected_connector_mutes_its_sources_alerts(alerting, tenant, env):
    from hybrid import outbox
    from hybrid.db import database

    def event(alertname: str, connector: str, status: str = "firing", **labels: str) -> None:
        with database(env["DATABASE_URL"]).transaction() as tx:
            outbox.enqueue(
                tx,
                "alerts",
                {
                    "status": status,
                    "tenant_id": tenant["id"],
                    "labels": {"alertname": alertname, "connector_id": connector, **labels},
                },
            )

    event("SourceDown", "con_1", source="erp")
    event("SourceDown", "con_2", source="erp")
    event("ConnectorDisconnected", "con_1")
    alerting.tick()
    listed = alerting("GET", "/api/v1/alerts", token=tenant["reader"]).json["alerts"]
    by = {(a["labels"]["alertname"], a["labels"]["connector_id"]): a for a in listed}
    down = by[("ConnectorDisconnected", "con_1")]
    assert by[("SourceDown", "con_1")]["inhibited_by"] == down["id"]
    assert by[("SourceDown", "con_2")]["inhibited_by"] is None
    assert down["inhibited_by"] is None
    event("ConnectorDisconnected", "con_1", status="resolved")
    alerting.tick()
    listed = alerting("GET", "/api/v1/alerts", token=tenant["reader"]).json["alerts"]
    by = {(a["labels"]["alertname"], a["labels"]["connector_id"]): a for a in listed}
    assert by[("SourceDown", "con_1")]["inhibited_by"] is None


def test_an_alert_with_resolve_at_resolves_itself_when_that_time_passes(alerting, tenant, env):
    """Quota warnings carry the end of their period: nothing else would ever resolve them."""
    from hybrid import outbox
    from hybrid.db import database

    def warn(period: str, resolve_at: str) -> None:
        with database(env["DATABASE_URL"]).transaction() as tx:
            outbox.enqueue(
                tx,
                "alerts",
                {
                    "status": "firing",
                    "tenant_id": tenant["id"],
                    "labels": {"alertname": "QuotaThreshold", "period": period},
                    "resolve_at": resolve_at,
                },
            )

    now = datetime.now(timezone.utc)
    warn("this period", (now + timedelta(hours=1)).isoformat())
    warn("the last period", (now - timedelta(seconds=1)).isoformat())
    summary = alerting.tick()
    assert summary["recorded"] == 2
    assert summary["expired"] == 1
    listed = alerting("GET", "/api/v1/alerts", token=tenant["reader"]).json["alerts"]
    assert sorted(a["status"] for a in listed) == ["firing", "resolved"]
    assert alerting.tick()["expired"] == 0


def test_an_event_with_a_malformed_resolve_at_is_refused_not_recorded(alerting, tenant, env):
    from hybrid import outbox
    from hybrid.db import database

    with database(env["DATABASE_URL"]).transaction() as tx:
        outbox.enqueue(
            tx,
            "alerts",
            {
                "status": "firing",
                "tenant_id": tenant["id"],
                "labels": {"alertname": "QuotaThreshold"},
                "resolve_at": "end of the month",
            },
        )
    summary = alerting.tick()
    assert summary["failed"] == 1
    assert summary["recorded"] == 0
    assert alerting("GET", "/api/v1/alerts", token=tenant["reader"]).json["alerts"] == []
