"""Alerting under faults, through the emulator: the queue publish failing (the outbox sweep
still notifies), the alerting function killed while its request is in flight (the same
notification is sent again under the same webhook-id, never a second one), and a silence that
mutes a connector's alert and then expires on time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from local_emulator.emulator import Emulator
from tests.support.link_outage import LinkOutage
from tests.support.pull_cloud import Cloud
from tests.support.webhook_inbox import WebhookInbox

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

# status-probe publishes its wake-ups to a TDMQ endpoint where nothing listens.
UNREACHABLE_QUEUE = {
    "QUEUE_BACKEND": "tdmq",
    "TDMQ_CLUSTER_ID": "pulsar-unreachable",
    "TDMQ_ENVIRONMENT": "alerts",
    "TDMQ_ENDPOINT": "http://127.0.0.1:9",
}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    data_dir = tmp_path_factory.mktemp("alerting-faults")
    with Emulator(
        ROOT / "serverless.yml",
        data_dir,
        retry_delays=(0.2, 0.2),
        env_overrides=UNREACHABLE_QUEUE,
        scheduled_timers=False,  # every tick here is fired by hand: none races the minute
    ) as running:
        yield running


@pytest.fixture
def inbox() -> Iterator[WebhookInbox]:
    with WebhookInbox() as receiver:
        yield receiver


def _outage(emulator: Emulator, cloud: Cloud, inbox: WebhookInbox) -> LinkOutage:
    created = cloud.connector(f"edge-{time.time_ns()}", "relay")
    cloud.call("POST", "/api/v1/alerts/channels", inbox.channel(f"inbox-{time.time_ns()}"))
    outage = LinkOutage(emulator, cloud.database_url, created["id"])
    outage.heartbeat(1)
    outage.probe()
    return outage


def test_with_the_queue_publish_failing_the_sweep_notifies_once_each_way(
    emulator: Emulator, cloud: Cloud, inbox: WebhookInbox
) -> None:
    outage = _outage(emulator, cloud, inbox)
    outage.go_down()
    time.sleep(1)  # a wake-up, had one been published, would have been handled by now
    assert outage.alert_state() is None, "no wake-up can have reached alerting"
    outage.alerting()  # the minute sweep finds the event in the outbox
    assert outage.alert_state() == "firing"
    outage.minutes_pass()
    outage.alerting()
    outage.come_back()
    outage.alerting()
    outage.minutes_pass()
    outage.alerting()
    outage.alerting()
    mine = inbox.notices(outage.connector_id)
    assert [n["status"] for n in mine] == ["firing", "resolved"]
    assert len(inbox.ids(outage.connector_id)) == 2
    assert inbox.bad_signatures == 0


def test_alerting_killed_mid_delivery_sends_the_same_notification_again_never_a_second(
    emulator: Emulator, cloud: Cloud, inbox: WebhookInbox
) -> None:
    outage = _outage(emulator, cloud, inbox)
    outage.go_down()
    outage.alerting()
    outage.minutes_pass()
    release = inbox.hold_next()
    tick = emulator.fire_timer("alerting", "alerting-every-minute")
    assert inbox.arrived.wait(30), "the notification never reached the inbox"
    assert emulator.crash("alerting") == 1  # killed while its request waits for an answer
    release.set()
    tick.result()  # SCF retries the timer event; the delivery is still leased: nothing resent
    assert len(inbox.ids(outage.connector_id)) == 1
    outage.leases_expire()  # a minute later the lease of the dead sender has run out
    outage.alerting()
    outage.alerting()
    first, again = inbox.ids(outage.connector_id)
    assert first == again, "the resend carries the same webhook-id, so receivers dedupe it"
    assert [n["status"] for n in inbox.notices(outage.connector_id)] == ["firing"]
    outage.come_back()
    outage.alerting()
    outage.minutes_pass()
    outage.alerting()
    assert [n["status"] for n in inbox.notices(outage.connector_id)] == ["firing", "resolved"]
    assert len(inbox.ids(outage.connector_id)) == 3


def test_a_silence_mutes_the_alert_and_expires_on_time(
    emulator: Emulator, cloud: Cloud, inbox: WebhookInbox
) -> None:
    outage = _outage(emulator, cloud, inbox)
    ends_at = datetime.now(timezone.utc) + timedelta(seconds=6)
    silence = cloud.call(
        "POST",
        "/api/v1/alerts/silences",
        {
            "matchers": {"connector_id": outage.connector_id},
            "ends_at": ends_at.isoformat(),
            "comment": "planned maintenance",
        },
    )
    outage.go_down()
    outage.alerting()
    outage.minutes_pass()
    outage.alerting()
    outage.alerting()
    assert datetime.now(timezone.utc) < ends_at, "the checks above must run inside the window"
    assert inbox.notices(outage.connector_id) == []
    listed = cloud.call("GET", "/api/v1/alerts?state=firing")["alerts"]
    [alert] = [a for a in listed if a["labels"].get("connector_id") == outage.connector_id]
    assert alert["silenced_by"] == silence["id"]
    time.sleep(max(0.0, (ends_at - datetime.now(timezone.utc)).total_seconds()) + 0.2)
    outage.alerting()
    mine = inbox.notices(outage.connector_id)
    assert [n["status"] for n in mine] == ["firing"]
    active = cloud.call("GET", "/api/v1/alerts/silences")["silences"]
    assert silence["id"] not in [s["id"] for s in active]
