"""status-probe through the emulator with a real relay connector: its ping answers give each
source's state, and a connector that stops polling goes down after the hysteresis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from local_emulator.connector_process import ConnectorProcess
from local_emulator.customer_db import CustomerDatabase
from local_emulator.emulator import Emulator
from tests.support.link_outage import LinkOutage
from tests.support.pull_cloud import Cloud, register_connector
from tests.support.webhook_inbox import WebhookInbox

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    data_dir = tmp_path_factory.mktemp("status-emulator")
    # Ticks are fired by hand: an alert recorded before alerting's timer came from the queue.
    with Emulator(
        ROOT / "serverless.yml", data_dir, retry_delays=(0.2, 0.2), scheduled_timers=False
    ) as running:
        yield running


def _tick(emulator: Emulator) -> None:
    result = emulator.fire_timer("status_probe", "status-probe-every-minute").result()
    assert result.ok, result.to_dict()


def _status(cloud: Cloud, connector_id: str) -> dict:
    body = requests.get(f"{cloud.url}/api/v1/hybrid/status", headers=cloud.auth, timeout=30)
    assert body.status_code == 200, body.text
    return next(c for c in body.json()["connectors"] if c["id"] == connector_id)


def test_a_relay_connector_reports_its_sources_and_goes_down_when_it_stops(
    emulator: Emulator, cloud: Cloud, customer: CustomerDatabase, tmp_path: Path
) -> None:
    created, config = register_connector(
        cloud, customer, tmp_path / "connector", "relay", poll_wait=1
    )
    process = ConnectorProcess(config).start(
        ready=lambda: cloud.last_seen(created["id"]) is not None
    )
    try:
        _tick(emulator)  # heartbeat fresh: connected; a ping is queued
        deadline = time.monotonic() + 20
        status = _status(cloud, created["id"])
        while time.monotonic() < deadline:
            _tick(emulator)  # the answered ping gives the sources
            status = _status(cloud, created["id"])
            if status["sources"] and status["sources"][0]["state"] == "connected":
                break
            time.sleep(0.5)
        assert status["state"] == "connected", status
        assert status["connected"] is True
        [erp] = status["sources"]
        assert erp["name"] == "erp"
        assert erp["state"] == "connected"
        assert erp["latency_ms"] is not None
        assert status["latency_ms"] is not None  # the ping's round trip
    finally:
        process.stop()
    # A long-poll the connector sent before it died still ends as a heartbeat (poll_wait=1).
    time.sleep(1.5)
    # Silent from now on: the heartbeat ages past its limit (simulated, not waited for).
    from hybrid.db import database

    with database(cloud.database_url).transaction() as tx:
        tx.execute(
            "UPDATE connectors SET last_seen_at = now() - interval '10 minutes' WHERE id = :id",
            id=created["id"],
        )
    states = []
    for _ in range(3):
        _tick(emulator)
        states.append(_status(cloud, created["id"])["state"])
    assert states == ["connected", "connected", "disconnected"]
    history = requests.get(
        f"{cloud.url}/api/v1/hybrid/status/{created['id']}/history", headers=cloud.auth, timeout=30
    ).json()
    assert history["samples"][0]["state"] == "disconnected"
    assert history["samples"][0]["ok"] is False


def test_a_connector_going_down_and_up_notifies_once_each_way(
    emulator: Emulator, cloud: Cloud
) -> None:
    """status-probe → outbox → (queue wake-up) → alerting → a real webhook receiver, through the
    emulator; the connector's silence and the passing of minutes are simulated in the database."""
    with WebhookInbox() as inbox:
        created = cloud.connector(f"edge-{time.time_ns()}", "relay")
        cloud.call("POST", "/api/v1/alerts/channels", inbox.channel(f"inbox-{time.time_ns()}"))
        outage = LinkOutage(emulator, cloud.database_url, created["id"])
        outage.heartbeat(1)
        outage.probe()
        outage.go_down()
        assert _status(cloud, created["id"])["state"] == "disconnected"
        # status-probe's wake-up on the queue has alerting record the alert without its timer.
        deadline = time.monotonic() + 20
        while outage.alert_state() != "firing" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert outage.alert_state() == "firing"
        outage.alerting()
        outage.minutes_pass()
        outage.alerting()
        outage.probe()  # still down: no new transition
        outage.minutes_pass()
        outage.alerting()
        assert [n["status"] for n in inbox.notices(created["id"])] == ["firing"]
        outage.come_back()
        assert _status(cloud, created["id"])["state"] == "connected"
        outage.alerting()
        outage.minutes_pass()
        outage.alerting()
        assert [n["status"] for n in inbox.notices(created["id"])] == ["firing", "resolved"]
        assert len(inbox.ids(created["id"])) == 2  # no request was repeated
        assert inbox.bad_signatures == 0
