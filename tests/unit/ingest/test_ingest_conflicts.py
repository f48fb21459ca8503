"""Stored conflicts: listing with cursor paging, tenant scoping and resolutions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from hybrid.db import Database, database
from hybrid.errors import InvalidStateError, ResourceNotFoundError
from hybrid.ingest.conflicts import (
    Conflict,
    ConflictNotFoundError,
    ConflictNotResolvableError,
    MergeDataInvalidError,
    RecordChangedError,
    get_conflict,
    list_conflicts,
    resolve_conflict,
)
from hybrid.ingest.engine import BatchOutcome, apply_batch
from hybrid.ingest.hashing import TOMBSTONE_HASH, content_hash
from hybrid.ingest.models import SourceConfig, validate_records
from hybrid.tenants import create_tenant

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
CRM = SourceConfig("crm", 0, "manual_review")


def up(key: str, minutes: int, **data: Any) -> dict[str, Any]:
    return {"key": key, "updated_at": (T0 + timedelta(minutes=minutes)).isoformat(), "data": data}


class Tenant:
    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        with db.transaction() as tx:
            self.id = create_tenant(tx, name).id
        self.pushes = 0

    def push(self, raw: list[Any], strategy: str = "manual_review") -> BatchOutcome:
        valid, rejected = validate_records(raw)
        assert not rejected
        self.pushes += 1
        with self.db.transaction() as tx:
            return apply_batch(
                tx, tenant_id=self.id, entity="customers", source=CRM,
                strategy=strategy,  # type: ignore[arg-type]
                records=valid, receipt_id=f"rcp_{self.id}_{self.pushes}",
            )  # fmt: skip

    def conflict_of(self, raw: list[Any], strategy: str = "manual_review") -> str:
        (result,) = self.push(raw, strategy).results
        assert result.status == "conflict"
        assert result.conflict_id
        return result.conflict_id

    def record(self, key: str) -> dict[str, Any]:
        with self.db.transaction() as tx:
            row = tx.one(
                "SELECT data, content_hash, updated_at, deleted, source, version FROM records "
                "WHERE tenant_id = :t AND entity = 'customers' AND key = :k",
                t=self.id,
                k=key,
            )
        assert row is not None
        return row

    def resolve(self, conflict_id: str, resolution: str, data: Any = None) -> Conflict:
        with self.db.transaction() as tx:
            return resolve_conflict(
                tx, tenant_id=self.id, conflict_id=conflict_id,
                resolution=resolution,  # type: ignore[arg-type]
                data=data, actor="key_test",
            )  # fmt: skip

    def list(self, **kwargs: Any) -> list[Conflict]:
        query: dict[str, Any] = {"status": None, "limit": 100, "before": None, **kwargs}
        with self.db.transaction() as tx:
            return list_conflicts(tx, tenant_id=self.id, **query)


@pytest.fixture
def acme(clean_db: str) -> Tenant:
    return Tenant(database(clean_db), "acme")


@pytest.fixture
def globex(clean_db: str) -> Tenant:
    return Tenant(database(clean_db), "globex")


def test_conflicts_list_newest_first_with_cursor_paging_and_status_filter(acme: Tenant) -> None:
    acme.push([up(f"k{i}", 0, v=0) for i in range(5)])
    ids = []
    for i in range(5):  # one push each: distinct creation times
        ids.append(acme.conflict_of([up(f"k{i}", 1, v=1)]))
    stale = acme.conflict_of([up("k0", -5, v=9)], "timestamp_priority")
    everything = acme.list()
    assert [c.id for c in everything] == [stale, *reversed(ids)]
    first = acme.list(limit=2)
    second = acme.list(limit=2, before=first[-1].id)
    third = acme.list(limit=2, before=second[-1].id)
    assert [c.id for c in first + second + third] == [c.id for c in everything]
    assert [c.id for c in acme.list(status="AUTO_RESOLVED")] == [stale]
    assert {c.status for c in acme.list(status="PENDING")} == {"PENDING"}
    assert acme.list(before="cfl_unknown") == []


def test_conflict_public_view_holds_both_versions(acme: Tenant) -> None:
    acme.push([up("k", 0, name="current")])
    conflict_id = acme.conflict_of([up("k", 5, name="incoming")])
    with acme.db.transaction() as tx:
        public = get_conflict(tx, acme.id, conflict_id).to_public()
    assert public["id"] == conflict_id
    assert (public["entity"], public["key"], public["source"]) == ("customers", "k", "crm")
    assert (public["strategy"], public["status"], public["reason"]) == (
        "manual_review", "PENDING", "manual review"
    )  # fmt: skip
    assert public["current_data"] == {"name": "current"}
    assert public["incoming_data"] == {"name": "incoming"}
    assert public["current_updated_at"] == T0
    assert public["incoming_updated_at"] == T0 + timedelta(minutes=5)
    assert public["resolution"] is None
    assert public["created_at"] is not None
    assert "tenant_id" not in public
    assert "current_hash" not in public


def test_another_tenants_conflict_is_not_found(acme: Tenant, globex: Tenant) -> None:
    acme.push([up("k", 0, v=1)])
    conflict_id = acme.conflict_of([up("k", 1, v=2)])
    with globex.db.transaction() as tx, pytest.raises(ConflictNotFoundError):
        get_conflict(tx, globex.id, conflict_id)
    with pytest.raises(ResourceNotFoundError):
        globex.resolve(conflict_id, "take_incoming")
    assert globex.list() == []
    assert acme.record("k")["data"] == {"v": 1}


def test_keep_current_closes_the_conflict_without_writing(acme: Tenant) -> None:
    acme.push([up("k", 0, v=1)])
    conflict_id = acme.conflict_of([up("k", 1, v=2)])
    resolved = acme.resolve(conflict_id, "keep_current")
    assert (resolved.status, resolved.resolution, resolved.resolved_by) == (
        "RESOLVED", "keep_current", "key_test"
    )  # fmt: skip
    assert resolved.resolved_at is not None
    assert acme.record("k")["version"] == 1


def test_take_incoming_writes_the_incoming_version(acme: Tenant) -> None:
    acme.push([up("k", 10, v=1)])
    conflict_id = acme.conflict_of([up("k", 5, v=2)], "timestamp_priority")
    with pytest.raises(ConflictNotResolvableError):  # AUTO_RESOLVED: already decided
        acme.resolve(conflict_id, "take_incoming")
    conflict_id = acme.conflict_of([up("k", 5, v=2)], "keep_both")
    resolved = acme.resolve(conflict_id, "take_incoming")
    assert resolved.status == "RESOLVED"
    record = acme.record("k")
    assert (record["data"], record["version"]) == ({"v": 2}, 2)
    assert bytes(record["content_hash"]) == content_hash({"v": 2})
    # The later of the two times stays: older pushes still lose against the resolution.
    assert record["updated_at"] == T0 + timedelta(minutes=10)
    assert acme.push([up("k", 7, v=3)], "timestamp_priority").results[0].status == "conflict"


def test_take_incoming_of_a_delete_makes_a_tombstone(acme: Tenant) -> None:
    acme.push([up("k", 0, v=1)])
    (result,) = acme.push(
        [{"key": "k", "op": "delete", "updated_at": T0.isoformat()}], "manual_review"
    ).results
    assert result.conflict_id
    acme.resolve(result.conflict_id, "take_incoming")
    record = acme.record("k")
    assert (record["deleted"], record["data"], record["version"]) == (True, None, 2)
    assert bytes(record["content_hash"]) == TOMBSTONE_HASH


def test_merge_stores_the_given_document(acme: Tenant) -> None:
    acme.push([up("k", 0, a=1, b=1)])
    conflict_id = acme.conflict_of([up("k", 1, a=2, b=2)])
    acme.resolve(conflict_id, "merge", {"a": 2, "b": 1})
    record = acme.record("k")
    assert (record["data"], record["version"]) == ({"a": 2, "b": 1}, 2)
    assert bytes(record["content_hash"]) == content_hash({"a": 2, "b": 1})
    # The stored hash matches a push of the same content: it is unchanged.
    assert acme.push([up("k", 9, b=1, a=2)]).results[0].status == "unchanged"


@pytest.mark.parametrize(
    "data", [None, {"text": "nul \x00"}, {"x": float("inf")}, {"blob": "x" * (300 * 1024)}]
)
def test_merge_with_data_that_cannot_be_stored_is_refused(acme: Tenant, data: Any) -> None:
    acme.push([up("k", 0, v=1)])
    conflict_id = acme.conflict_of([up("k", 1, v=2)])
    with pytest.raises(MergeDataInvalidError) as caught:
        acme.resolve(conflict_id, "merge", data)
    assert caught.value.errors
    assert all(e["loc"] == ["data"] for e in caught.value.errors)
    assert acme.list()[0].status == "PENDING"


def test_resolving_after_the_record_moved_on_is_refused(acme: Tenant) -> None:
    acme.push([up("k", 0, v=1)])
    first = acme.conflict_of([up("k", 1, v=2)])
    second = acme.conflict_of([up("k", 2, v=3)])
    acme.resolve(first, "take_incoming")
    for resolution, data in (("take_incoming", None), ("merge", {"v": 4})):
        with pytest.raises(RecordChangedError) as caught:
            acme.resolve(second, resolution, data)
        assert isinstance(caught.value, InvalidStateError)
        assert "record changed since" in str(caught.value)
    assert acme.record("k")["data"] == {"v": 2}
    # Keeping the current version needs no unchanged record.
    assert acme.resolve(second, "keep_current").status == "RESOLVED"


def test_a_resolved_conflict_cannot_be_resolved_again(acme: Tenant) -> None:
    acme.push([up("k", 0, v=1)])
    conflict_id = acme.conflict_of([up("k", 1, v=2)])
    acme.resolve(conflict_id, "keep_current")
    with pytest.raises(ConflictNotResolvableError):
        acme.resolve(conflict_id, "take_incoming")
    with pytest.raises(ConflictNotFoundError):
        acme.resolve("cfl_0000000000000000", "keep_current")
