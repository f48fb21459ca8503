"""The queue trigger: a TDMQ (EventBridge) wake-up makes alerting record and notify what the
outbox holds at once; its body is never trusted, and a repeated wake-up sends nothing twice."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from tests.functional.alerting.helpers import payloads, put_event
from tests.support.functions import load_function
from tests.support.http import context

EVENTS = Path(__file__).resolve().parents[2] / "events"
TDMQ = json.loads((EVENTS / "tdmq_eventbridge.json").read_text())


def _wake_up(body: str) -> dict:
    event = copy.deepcopy(TDMQ)
    event["data"]["msgBody"] = body
    event["data"]["topic"] = "persistent://pulsar-hybrid01/alerts-ns/alerts"
    return event


def test_a_wake_up_records_and_notifies_without_waiting_for_the_minute_sweep(
    alerting, tenant, env, channel, receiver
):
    handler = load_function("alerting")
    put_event(env, tenant["id"], "ConnectorDisconnected", "con_q", "firing")
    body = json.dumps({"kind": "alert_events", "events": 1, "producer": "status-probe"})
    summary = handler.main_handler(_wake_up(body), context("alerting"))
    assert summary["recorded"] == 1
    assert summary["sent"] == 1
    [note] = payloads(receiver)
    assert note["status"] == "firing"
    assert note["title"].startswith("[FIRING] ConnectorDisconnected")
    again = handler.main_handler(_wake_up(body), context("alerting"))  # a duplicate wake-up
    assert again["recorded"] == 0
    assert again["sent"] == 0
    assert len(receiver.received) == 1


def test_the_body_of_a_wake_up_is_not_trusted(alerting, tenant, env, channel, receiver):
    """A forged or garbled message cannot make alerting send anything the outbox does not hold."""
    handler = load_function("alerting")
    forged = json.dumps(
        {
            "status": "firing",
            "severity": "critical",
            "tenant_id": tenant["id"],
            "labels": {"alertname": "Forged", "connector_id": "con_x"},
        }
    )
    for body in (forged, "not json at all"):
        summary = handler.main_handler(_wake_up(body), context("alerting"))
        assert summary["recorded"] == 0
    assert receiver.received == []
    listed = alerting("GET", "/api/v1/alerts", token=tenant["reader"]).json["alerts"]
    assert listed == []
