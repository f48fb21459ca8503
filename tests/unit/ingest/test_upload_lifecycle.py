"""File uploads end to end against the real local COS and PostgreSQL: create, upload, process in
chunks with the real engine, per-line errors, resume after a crash, re-delivery, concurrent
deliveries, unreadable files and tenant isolation."""

from __future__ import annotations

import gzip
import json
import secrets
import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests

from hybrid.db import Database, Transaction, database
from hybrid.errors import DomainError
from hybrid.ingest import uploads
from hybrid.ingest.engine import BatchOutcome, apply_batch
from hybrid.ingest.models import IncomingRecord, SourceConfig
from hybrid.ingest.uploads import Upload, UploadNotFoundError
from hybrid.storage.cos import CosObjectStore

ROWS = 230
CHUNK = 40
# Items (1-based) that are broken in every format, and how.
BAD = {7: "bad_time", 50: "no_key", 120: "broken", 199: "bad_time"}


@pytest.fixture(scope="module")
def store(endpoints: Any) -> CosObjectStore:
    env = endpoints.cos.env()
    return CosObjectStore(
        region=env["COS_REGION"],
        bucket=env["COS_BUCKET"],
        secret_id=env["COS_SECRET_ID"],
        secret_key=env["COS_SECRET_KEY"],
        endpoint_url=env["COS_ENDPOINT_URL"],
    )


@pytest.fixture
def db(clean_db: str) -> Database:
    return database(clean_db)


def new_tenant(db: Database) -> str:
    tenant_id = f"ten_{secrets.token_hex(6)}"
    with db.transaction() as tx:
        tx.execute("INSERT INTO tenants (id, name) VALUES (:id, :id)", id=tenant_id)
    return tenant_id


def engine_apply(
    tx: Transaction, upload: Upload, records: list[tuple[int, IncomingRecord]]
) -> BatchOutcome:
    return apply_batch(
        tx,
        tenant_id=upload.tenant_id,
        entity=upload.entity,
        source=SourceConfig(upload.source, 0, "timestamp_priority"),
        strategy=upload.conflict_strategy or "timestamp_priority",  # type: ignore[arg-type]
        records=records,
        receipt_id=upload.receipt_id or upload.id,
    )


def _rows(count: int = ROWS) -> list[dict[str, Any]]:
    rows = []
    for i in range(1, count + 1):
        row: dict[str, Any] = {
            "key": f"cust-{i % 200}",  # keys repeat: later rows update earlier ones
            "updated_at": f"2026-11-20T08:{i // 60:02d}:{i % 60:02d}Z",
            "data": {"name": f"客户 {i}", "tier": str(i % 3)},
        }
        if BAD.get(i) == "bad_time":
            row["updated_at"] = "yesterday"
        elif BAD.get(i) == "no_key":
            row["key"] = ""
        rows.append(row)
    return rows


def build_file(fmt: str, compression: str) -> bytes:
    rows = _rows()
    if fmt == "ndjson":
        lines = [
            "{broken json" if BAD.get(i) == "broken" else json.dumps(row, ensure_ascii=False)
            for i, row in enumerate(rows, 1)
        ]
        data = ("\n".join(lines) + "\n").encode()
    elif fmt == "csv":
        lines = ["key,updated_at,name,tier"]
        for i, row in enumerate(rows, 1):
            cells = [row["key"], row["updated_at"], row["data"]["name"], row["data"]["tier"]]
            lines.append("too,few" if BAD.get(i) == "broken" else ",".join(cells))
        data = ("\r\n".join(lines) + "\r\n").encode()
    else:
        items = [
            json.dumps("not an object")
            if BAD.get(i) == "broken"
            else json.dumps(row, ensure_ascii=False)
            for i, row in enumerate(rows, 1)
        ]
        data = ('{"exported_by": "crm", "records": [\n' + ",\n".join(items) + "\n]}").encode()
    return gzip.compress(data) if compression == "gzip" else data


def expected_line(fmt: str, item: int) -> int:
    """Where item `item` starts: CSV has a header line, JSON counts records."""
    return item + 1 if fmt == "csv" else item


def create(
    db: Database,
    tenant_id: str,
    *,
    fmt: str = "ndjson",
    compression: str = "none",
    filename: str = "export.ndjson",
    strategy: str | None = None,
) -> Upload:
    with db.transaction() as tx:
        return uploads.create_upload(
            tx,
            tenant_id=tenant_id,
            source="crm",
            entity="customers",
            filename=filename,
            fmt=fmt,
            compression=compression,
            size=None,
            conflict_strategy=strategy,
            actor="key_test",
        )


def stored_records(db: Database, tenant_id: str) -> list[dict[str, Any]]:
    with db.transaction() as tx:
        return tx.rows(
            "SELECT entity, key, data, content_hash, updated_at, deleted, source, version "
            "FROM records WHERE tenant_id = :t ORDER BY entity, key",
            t=tenant_id,
        )


def upload_state(db: Database, upload_id: str) -> dict[str, Any]:
    with db.transaction() as tx:
        row = tx.one(
            "SELECT status, accepted, rejected, rows_done, bytes_read, errors, outcome, failure "
            "FROM file_uploads WHERE id = :id",
            id=upload_id,
        )
    assert row is not None
    return row


def counting(apply: Callable[..., Any], calls: list[int]) -> Callable[..., Any]:
    def wrapped(tx: Transaction, upload: Upload, records: list[Any]) -> Any:
        calls.append(len(records))
        return apply(tx, upload, records)

    return wrapped


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_file_is_ingested_in_chunks(
    db: Database, store: CosObjectStore, fmt: str, compression: str
) -> None:
    tenant_id = new_tenant(db)
    upload = create(db, tenant_id, fmt=fmt, compression=compression, filename=f"x.{fmt}")
    assert upload.status == "pending"
    body = build_file(fmt, compression)
    store.put_bytes(upload.object_key, body)
    calls: list[int] = []

    done = uploads.process_upload(
        db, store, upload.object_key, apply_chunk=counting(engine_apply, calls), chunk_size=CHUNK
    )

    assert done.status == "done"
    assert done.failure is None
    assert done.rows_done == ROWS
    assert done.accepted == ROWS - len(BAD)
    assert done.rejected == len(BAD)
    assert done.bytes_read == len(body)
    assert sum(calls) == ROWS - len(BAD)
    assert len(calls) == -(-ROWS // CHUNK)
    assert [e["line"] for e in done.errors] == [expected_line(fmt, i) for i in sorted(BAD)]
    by_line = {e["line"]: e["error"] for e in done.errors}
    assert "updated_at" in by_line[expected_line(fmt, 7)]
    assert "key" in by_line[expected_line(fmt, 50)]
    # Keys repeat: rows 201.. update the keys of rows 1.. with newer times.
    keys = {row["key"] for i, row in enumerate(_rows(), 1) if i not in BAD}
    assert done.outcome["inserted"] == len(keys)
    assert done.outcome["updated"] == done.accepted - len(keys)
    assert sum(done.outcome.values()) == done.accepted
    records = stored_records(db, tenant_id)
    assert len(records) == done.outcome["inserted"]
    latest = {r["key"]: r for r in records}
    assert latest["cust-30"]["data"] == {"name": "客户 230", "tier": str(230 % 3)}
    assert latest["cust-1"]["data"] == {"name": "客户 201", "tier": str(201 % 3)}
    public = done.to_public()
    assert public["upload_id"] == upload.id
    assert public["status"] == "done"
    assert public["errors"] == [{"line": e["line"], "error": e["error"]} for e in done.errors]


def test_upload_through_the_presigned_url(db: Database, store: CosObjectStore) -> None:
    tenant_id = new_tenant(db)
    upload = create(db, tenant_id, filename="../../etc/客户 export (1).ndjson")
    assert upload.object_key == f"uploads/{tenant_id}/{upload.id}/export_1_.ndjson"
    assert upload.id.startswith("upl_")
    url = store.presign_put(upload.object_key, expires_in=300)
    body = build_file("ndjson", "none")
    response = requests.put(url, data=body, timeout=30)
    assert response.status_code == 200
    done = uploads.process_upload(db, store, upload.object_key, apply_chunk=engine_apply)
    assert done.status == "done"
    assert done.accepted == ROWS - len(BAD)
    with db.transaction() as tx:
        found = uploads.find_by_object_key(tx, upload.object_key)
        assert found is not None
        assert found.id == upload.id
        assert uploads.find_by_object_key(tx, upload.object_key + "x") is None


class Crash(Exception):
    pass


@pytest.mark.parametrize(
    ("fmt", "compression"), [("ndjson", "gzip"), ("csv", "none"), ("json", "gzip")]
)
def test_resume_after_a_crash_equals_one_clean_run(
    db: Database, store: CosObjectStore, fmt: str, compression: str
) -> None:
    body = build_file(fmt, compression)
    clean_tenant, crash_tenant = new_tenant(db), new_tenant(db)
    clean = create(db, clean_tenant, fmt=fmt, compression=compression)
    store.put_bytes(clean.object_key, body)
    clean_done = uploads.process_upload(
        db, store, clean.object_key, apply_chunk=engine_apply, chunk_size=CHUNK
    )

    crashy = create(db, crash_tenant, fmt=fmt, compression=compression)
    store.put_bytes(crashy.object_key, body)
    calls: list[int] = []

    def crash_on_third(tx: Transaction, upload: Upload, records: list[Any]) -> Any:
        calls.append(len(records))
        outcome = engine_apply(tx, upload, records)  # written, then the crash rolls it back
        if len(calls) == 3:
            raise Crash
        return outcome

    with pytest.raises(Crash):
        uploads.process_upload(
            db, store, crashy.object_key, apply_chunk=crash_on_third, chunk_size=CHUNK
        )
    midway = upload_state(db, crashy.id)
    assert midway["status"] == "processing"
    assert midway["rows_done"] == 2 * CHUNK

    resumed_calls: list[int] = []
    resumed = uploads.process_upload(
        db,
        store,
        crashy.object_key,
        apply_chunk=counting(engine_apply, resumed_calls),
        chunk_size=CHUNK,
    )
    # Nothing applied twice: the resumed run started with the third chunk.
    assert sum(calls[:2]) + sum(resumed_calls) == clean_done.accepted
    assert upload_state(db, crashy.id) == upload_state(db, clean.id)
    assert resumed.rows_done == clean_done.rows_done
    assert stored_records(db, crash_tenant) == stored_records(db, clean_tenant)


def test_redelivered_event_of_a_done_upload_is_a_no_op(db: Database, store: CosObjectStore) -> None:
    tenant_id = new_tenant(db)
    upload = create(db, tenant_id)
    store.put_bytes(upload.object_key, build_file("ndjson", "none"))
    first = uploads.process_upload(db, store, upload.object_key, apply_chunk=engine_apply)
    calls: list[int] = []
    finished: list[str] = []
    again = uploads.process_upload(
        db,
        store,
        upload.object_key,
        apply_chunk=counting(engine_apply, calls),
        on_finish=lambda tx, upl: finished.append(upl.status),
    )
    assert calls == []
    assert finished == []
    assert again == first


def test_concurrent_deliveries_apply_each_chunk_once(
    clean_db: str, db: Database, store: CosObjectStore
) -> None:
    tenant_id = new_tenant(db)
    upload = create(db, tenant_id)
    store.put_bytes(upload.object_key, build_file("ndjson", "none"))
    calls: list[int] = []
    lock = threading.Lock()

    def apply(tx: Transaction, upl: Upload, records: list[Any]) -> Any:
        with lock:
            calls.append(len(records))
        return engine_apply(tx, upl, records)

    results: list[Upload] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        own = Database(clean_db)  # a connection of its own, as a second SCF instance
        try:
            results.append(
                uploads.process_upload(
                    own, store, upload.object_key, apply_chunk=apply, chunk_size=10
                )
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(calls) == ROWS - len(BAD)
    final = upload_state(db, upload.id)
    assert final["status"] == "done"
    assert final["rows_done"] == ROWS
    assert final["accepted"] == ROWS - len(BAD)
    assert len(final["errors"]) == len(BAD)


def test_missing_object_fails_with_a_reason(db: Database, store: CosObjectStore) -> None:
    upload = create(db, new_tenant(db))
    finished: list[str] = []
    failed = uploads.process_upload(
        db,
        store,
        upload.object_key,
        apply_chunk=engine_apply,
        on_finish=lambda tx, upl: finished.append(upl.status),
    )
    assert failed.status == "failed"
    assert failed.failure == uploads.MISSING_OBJECT
    assert failed.to_public()["errors"] == [{"line": 0, "error": uploads.MISSING_OBJECT}]
    assert finished == ["failed"]


def test_corrupt_gzip_fails_after_applying_what_could_be_read(
    db: Database, store: CosObjectStore
) -> None:
    tenant_id = new_tenant(db)
    upload = create(db, tenant_id, compression="gzip")
    body = build_file("ndjson", "gzip")
    store.put_bytes(upload.object_key, body[: len(body) * 2 // 3])
    failed = uploads.process_upload(
        db, store, upload.object_key, apply_chunk=engine_apply, chunk_size=CHUNK
    )
    assert failed.status == "failed"
    assert failed.failure == "the file is not valid gzip (corrupt or truncated)"
    assert 0 < failed.rows_done < ROWS
    assert failed.errors[-1]["error"] == failed.failure
    assert len(stored_records(db, tenant_id)) > 0
    # Final: a re-delivered event changes nothing.
    again = uploads.process_upload(db, store, upload.object_key, apply_chunk=engine_apply)
    assert again == failed


@pytest.mark.parametrize(
    ("fmt", "compression", "body"),
    [
        ("csv", "none", b'[{"key": "a"}]'),
        ("json", "none", b'{"key": "a"}\n{"key": "b"}\n'),
        ("ndjson", "none", gzip.compress(b'{"key": "a"}\n')),
        ("ndjson", "gzip", b'{"key": "a"}\n'),
    ],
)
def test_wrong_format_fails(
    db: Database, store: CosObjectStore, fmt: str, compression: str, body: bytes
) -> None:
    upload = create(db, new_tenant(db), fmt=fmt, compression=compression)
    store.put_bytes(upload.object_key, body)
    calls: list[int] = []
    failed = uploads.process_upload(
        db, store, upload.object_key, apply_chunk=counting(engine_apply, calls)
    )
    assert failed.status == "failed"
    assert failed.failure
    assert calls == []


def test_refused_chunk_fails_the_upload_and_keeps_earlier_chunks(
    db: Database, store: CosObjectStore
) -> None:
    class QuotaGone(DomainError):
        pass

    tenant_id = new_tenant(db)
    upload = create(db, tenant_id)
    store.put_bytes(upload.object_key, build_file("ndjson", "none"))
    calls: list[int] = []

    def refuse_third(tx: Transaction, upl: Upload, records: list[Any]) -> Any:
        calls.append(len(records))
        if len(calls) == 3:
            raise QuotaGone("daily record quota of 100 exhausted (100 used)")
        return engine_apply(tx, upl, records)

    failed = uploads.process_upload(
        db, store, upload.object_key, apply_chunk=refuse_third, chunk_size=CHUNK
    )
    assert failed.status == "failed"
    assert failed.failure == "daily record quota of 100 exhausted (100 used)"
    assert failed.rows_done == 2 * CHUNK


def test_errors_kept_are_capped(db: Database, store: CosObjectStore) -> None:
    upload = create(db, new_tenant(db))
    body = b"".join(b"{not json\n" for _ in range(300)) + b'{"key": "k"}\n'
    store.put_bytes(upload.object_key, body)
    done = uploads.process_upload(
        db, store, upload.object_key, apply_chunk=engine_apply, chunk_size=70, max_errors_kept=150
    )
    assert done.status == "done"
    assert done.rejected == 301  # the last record has no updated_at
    assert len(done.errors) == 150
    assert [e["line"] for e in done.errors] == list(range(1, 151))
    assert len(done.to_public()["errors"]) == 100


def test_another_tenant_cannot_read_the_upload(db: Database) -> None:
    owner, other = new_tenant(db), new_tenant(db)
    upload = create(db, owner)
    with db.transaction() as tx:
        assert uploads.get_upload(tx, owner, upload.id).id == upload.id
        with pytest.raises(UploadNotFoundError):
            uploads.get_upload(tx, other, upload.id)
        with pytest.raises(UploadNotFoundError):
            uploads.get_upload(tx, owner, "upl_unknown")
    assert issubclass(UploadNotFoundError, uploads.ResourceNotFoundError)


def test_unknown_object_key(db: Database, store: CosObjectStore) -> None:
    with pytest.raises(UploadNotFoundError):
        uploads.process_upload(db, store, "uploads/nobody/upl_x/f.csv", apply_chunk=engine_apply)


def test_public_document(db: Database) -> None:
    upload = create(db, new_tenant(db), fmt="csv", compression="gzip", filename="a.csv.gz")
    public = upload.to_public()
    assert {
        "upload_id",
        "status",
        "filename",
        "format",
        "compression",
        "accepted",
        "rejected",
        "rows_done",
        "bytes_read",
        "errors",
        "created_at",
        "updated_at",
    } <= set(public)
    assert public["status"] == "pending"
    assert public["format"] == "csv"
    assert public["compression"] == "gzip"
    assert public["filename"] == "a.csv.gz"
    assert public["errors"] == []
    assert "tenant_id" not in public
    assert "object_key" not in public


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("export.csv", "export.csv"),
        ("C:\\Users\\me\\data 2026.csv", "data_2026.csv"),
        ("../../secret", "secret"),
        ("...", "upload"),
        ("客户.json", "json"),
        (".hidden.ndjson", "hidden.ndjson"),
        ("a" * 300 + ".csv", "a" * 96 + ".csv"),
    ],
)
def test_sanitise_filename(name: str, safe: str) -> None:
    assert uploads.sanitise_filename(name) == safe
