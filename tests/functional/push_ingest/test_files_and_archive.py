"""Large files through presigned COS uploads; raw pushes archived to COS through the outbox."""

from __future__ import annotations

import gzip
import json

import requests

from hybrid.db import database
from tests.support.http import EVENTS_DIR, context

from .conftest import Call, records


def _cos_event(bucket: str, key: str, size: int) -> dict:
    """The COS object-created event, shaped like the real capture in tests/events/cos_real.json."""
    from pathlib import Path

    event = json.loads(
        (Path(__file__).resolve().parents[2] / "events" / "cos_real.json").read_text()
    )
    name, appid = bucket.rsplit("-", 1)
    record = event["Records"][0]
    record["cos"]["cosBucket"].update(name=name, appid=appid)
    record["cos"]["cosObject"].update(key=f"/{appid}/{name}/{key}", size=size)
    record["event"]["eventName"] = "cos:ObjectCreated:Put"
    return event


def _upload(
    push: Call, handler, key: str, push_env, content: bytes, fmt: str, compression: str = "none"
) -> dict:
    created = push(
        "POST",
        "/api/v1/sync/push/file",
        token=key,
        body={
            "source": "erp",
            "filename": f"customers.{fmt}",
            "format": fmt,
            "compression": compression,
            "size": len(content),
        },
    )
    assert created.status == 201, created.json
    assert created.json["method"] == "PUT"
    put = requests.put(created.json["upload_url"], data=content, timeout=30)
    assert put.status_code == 200, put.text
    upload_id = created.json["upload_id"]
    pending = push("GET", f"/api/v1/sync/push/file/{upload_id}", token=key)
    assert pending.json["status"] == "pending"
    with database(push_env["DATABASE_URL"]).transaction() as tx:
        object_key = tx.scalar("SELECT object_key FROM file_uploads WHERE id = :id", id=upload_id)
    handler.main_handler(
        _cos_event(push_env["COS_BUCKET"], object_key, len(content)), context("push-ingest")
    )
    return push("GET", f"/api/v1/sync/push/file/{upload_id}", token=key).json


def test_ndjson_gzip_upload_is_ingested_with_per_line_errors(
    push: Call, handler, tenant, push_env
) -> None:
    acme = tenant()
    lines = [json.dumps(r) for r in records(250)]
    lines.insert(10, "{not json")
    content = gzip.compress("\n".join(lines).encode())
    status = _upload(push, handler, acme["key"], push_env, content, "ndjson", "gzip")
    assert status["status"] == "done"
    assert status["accepted"] == 250
    assert status["rejected"] == 1
    assert status["errors"][0]["line"] == 11
    with database(push_env["DATABASE_URL"]).transaction() as tx:
        assert (
            tx.scalar("SELECT count(*) FROM records WHERE tenant_id = :t", t=acme["tenant_id"])
            == 250
        )


def test_csv_upload(push: Call, handler, tenant, push_env) -> None:
    acme = tenant()
    rows = ["key,op,updated_at,name,city"] + [
        f"c-{i},upsert,2026-11-20T08:00:00Z,名字{i},上海" for i in range(40)
    ]
    status = _upload(push, handler, acme["key"], push_env, "\n".join(rows).encode(), "csv")
    assert (status["status"], status["accepted"], status["rejected"]) == ("done", 40, 0)


def test_other_tenants_upload_is_not_found(push: Call, tenant) -> None:
    acme, globex = tenant("Acme"), tenant("Globex")
    created = push(
        "POST",
        "/api/v1/sync/push/file",
        token=acme["key"],
        body={"source": "erp", "filename": "a.csv", "format": "csv"},
    )
    other = push("GET", f"/api/v1/sync/push/file/{created.json['upload_id']}", token=globex["key"])
    assert other.status == 404


def test_timer_archives_raw_pushes_and_survives_a_cos_outage(
    push: Call, handler, tenant, push_env, stack
) -> None:
    from hybrid.config import CosSettings
    from hybrid.storage import object_store

    acme = tenant()
    timer = json.loads((EVENTS_DIR / "timer.json").read_text())
    stack.stop_cos()
    try:
        pushed = push(
            "POST",
            "/api/v1/sync/push/batch",
            token=acme["key"],
            body={"source": "crm", "records": records(3)},
        )
        assert pushed.status == 200
        down = handler.main_handler(timer, context("push-ingest"))
        assert down["archive_failed"] == 1
    finally:
        stack.start_cos()
    with database(push_env["DATABASE_URL"]).transaction() as tx:
        tx.execute("UPDATE outbox SET available_at = now()")
    up = handler.main_handler(timer, context("push-ingest"))
    assert up["archived"] == 1
    receipt = push(
        "GET", f"/api/v1/sync/receipts/{pushed.json['receipt_id']}", token=acme["key"]
    ).json
    assert receipt["archived"] is True
    with database(push_env["DATABASE_URL"]).transaction() as tx:
        key = tx.scalar(
            "SELECT archive_key FROM push_receipts WHERE id = :id", id=pushed.json["receipt_id"]
        )
    store = object_store(CosSettings())
    raw = json.loads(gzip.decompress(store.get_bytes(key)))
    assert [r["key"] for r in raw["records"]] == ["cust-0", "cust-1", "cust-2"]
