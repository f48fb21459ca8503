"""Notifications end to end in the alerting function: grouped per channel, sent once after the
group wait, a resolved notice when the group clears, silences and inhibition respected, a
failing receiver retried and finally dead-lettered with an alert of its own."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.functional.alerting.helpers import age_groups, payloads, put_event


def test_one_firing_notice_per_group_then_one_resolved_notice(
    alerting, tenant, env, channel, receiver
):
    put_event(env, tenant["id"], "ConnectorDisconnected", "con_1", "firing")
    put_event(env, tenant["id"], "SourceDown", "con_1", "firing", source="erp")  # inhibited
    first = alerting.tick()
    assert first["queued"] == 1
    assert first["sent"] == 1
    [note] = payloads(receiver)
    assert note["status"] == "firing"
    assert note["title"].startswith("[FIRING] ConnectorDisconnected")
    assert [a["labels"]["alertname"] for a in note["alerts"]] == ["ConnectorDisconnected"]
    again = alerting.tick()  # nothing changed: nothing sent
    assert again["queued"] == 0
    assert len(receiver.received) == 1
    put_event(env, tenant["id"], "ConnectorDisconnected", "con_1", "resolved", age_s=0)
    put_event(env, tenant["id"], "SourceDown", "con_1", "resolved", age_s=0, source="erp")
    alerting.tick()
    assert len(receiver.received) == 1  # inside the group interval
    age_groups(env, 301)
    alerting.tick()
    notes = payloads(receiver)
    assert [n["status"] for n in notes] == ["firing", "resolved"]
    # The source's alert was muted while it fired and resolved before anyone was told.
    assert {n["group_key"] for n in notes} == {"alertname=ConnectorDisconnected|connector_id=con_1"}


def test_the_group_wait_holds_a_fresh_alert_back(alerting, tenant, env, channel, receiver):
    put_event(env, tenant["id"], "ConnectorDisconnected", "con_1", "firing", age_s=5)
    assert alerting.tick()["queued"] == 0
    assert receiver.received == []


def test_silenced_and_low_severity_alerts_are_not_sent(alerting, tenant, env, channel, receiver):
    ends = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    alerting(
        "POST",
        "/api/v1/alerts/silences",
        token=tenant["admin"],
        body={"matchers": {"connector_id": "con_1"}, "ends_at": ends},
    )
    put_event(env, tenant["id"], "ConnectorDisconnected", "con_1", "firing")
    put_event(env, tenant["id"], "ConnectorDegraded", "con_2", "firing", severity="info")
    assert alerting.tick()["queued"] == 0
    assert receiver.received == []


def test_a_failing_receiver_is_retried_then_dead_lettered_with_an_alert(
    alerting, tenant, env, channel, receiver
):
    from hybrid.db import database

    receiver.answer = 503
    put_event(env, tenant["id"], "ConnectorDisconnected", "con_1", "firing")
    assert alerting.tick()["pending"] == 1
    for _ in range(4):
        with database(env["DATABASE_URL"]).transaction() as tx:
            tx.execute(
                "UPDATE alert_deliveries SET next_attempt_at = now() WHERE status = 'pending'"
            )
        alerting.tick()
    with database(env["DATABASE_URL"]).transaction() as tx:
        delivery = tx.one("SELECT status, attempts, last_status FROM alert_deliveries")
    assert delivery == {"status": "dead", "attempts": 5, "last_status": "http_503"}
    assert len(receiver.received) == 5
    alerting.tick()  # the dead letter's own alert event is recorded on the next tick
    listed = alerting(
        "GET", "/api/v1/alerts", token=tenant["reader"], query={"state": "firing"}
    ).json
    assert "AlertDeliveryFailed" in {a["labels"]["alertname"] for a in listed["alerts"]}


def test_a_delivery_claimed_by_one_tick_is_not_sent_by_another(
    alerting, tenant, env, channel, receiver
):
    from hybrid.alerts import notify
    from hybrid.db import database

    put_event(env, tenant["id"], "ConnectorDisconnected", "con_1", "firing")
    alerting.tick()
    with database(env["DATABASE_URL"]).transaction() as tx:
        tx.execute("UPDATE alert_deliveries SET status = 'pending', next_attempt_at = now()")
    db = database(env["DATABASE_URL"])
    first = notify.claim(db, limit=10)
    second = notify.claim(db, limit=10)
    assert len(first) == 1
    assert second == []


def test_a_link_bouncing_inside_the_group_interval_does_not_page_again(
    alerting, tenant, env, channel, receiver
):
    """Down, up, down again within minutes: one firing notice; the bounces are held back by the
    group interval and, since the group ends as it was told (firing), nothing more is sent."""
    put_event(env, tenant["id"], "ConnectorDisconnected", "con_f", "firing", age_s=120)
    alerting.tick()
    assert [n["status"] for n in payloads(receiver)] == ["firing"]
    for age_s in (90, 60, 30):  # resolved, firing, resolved... every minute
        put_event(env, tenant["id"], "ConnectorDisconnected", "con_f", "resolved", age_s=age_s)
        alerting.tick()
        put_event(env, tenant["id"], "ConnectorDisconnected", "con_f", "firing", age_s=age_s - 1)
        alerting.tick()
    assert len(receiver.received) == 1
    age_groups(env, 301)  # the group interval has passed: the group is still firing, as told
    alerting.tick()
    assert len(receiver.received) == 1
