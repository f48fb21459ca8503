"""The write engine against real PostgreSQL: each strategy's outcomes and stored rows."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from hybrid.db import Database, database
from hybrid.ingest.engine import BatchOutcome, apply_batch
from hybrid.ingest.hashing import TOMBSTONE_HASH, content_hash
from hybrid.ingest.models import SourceConfig, validate_records
from hybrid.tenants import create_tenant

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
CRM = SourceConfig("crm", 0, "timestamp_priority")


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def up(key: str, minutes: int, **data: Any) -> dict[str, Any]:
    return {"key": key, "op": "upsert", "updated_at": at(minutes), "data": data}


def delete(key: str, minutes: int) -> dict[str, Any]:
    return {"key": key, "op": "delete", "updated_at": at(minutes)}


class Store:
    """Pushes batches for one tenant and reads back what is stored."""

    def __init__(self, db: Database, tenant_id: str) -> None:
        self.db = db
        self.tenant_id = tenant_id
        self.pushes = 0

    def push(
        self,
        raw: list[Any],
        strategy: str = "timestamp_priority",
        *,
        source: SourceConfig = CRM,
        priorities: dict[str, int] | None = None,
        receipt_id: str | None = None,
        entity: str = "customers",
    ) -> BatchOutcome:
        valid, rejected = validate_records(raw)
        assert not rejected, rejected
        self.pushes += 1
        with self.db.transaction() as tx:
            return apply_batch(
                tx,
                tenant_id=self.tenant_id,
                entity=entity,
                source=source,
                strategy=strategy,  # type: ignore[arg-type]
                records=valid,
                receipt_id=receipt_id or f"rcp_{self.pushes}",
                source_priorities=priorities,
            )

    def row(self, key: str, entity: str = "customers") -> dict[str, Any] | None:
        with self.db.transaction() as tx:
            return tx.one(
                "SELECT data, content_hash, updated_at, deleted, source, field_times, version, "
                "receipt_id, ingested_at, xmin::text AS xmin FROM records "
                "WHERE tenant_id = :t AND entity = :e AND key = :k",
                t=self.tenant_id,
                e=entity,
                k=key,
            )

    def conflicts(self) -> list[dict[str, Any]]:
        with self.db.transaction() as tx:
            return tx.rows(
                "SELECT * FROM data_conflicts WHERE tenant_id = :t ORDER BY created_at, key",
                t=self.tenant_id,
            )


def statuses(outcome: BatchOutcome) -> list[str]:
    return [result.status for result in outcome.results]


@pytest.fixture
def store(clean_db: str) -> Store:
    db = database(clean_db)
    with db.transaction() as tx:
        tenant = create_tenant(tx, "acme")
    return Store(db, tenant.id)


def test_new_records_are_inserted_with_hash_source_and_version(store: Store) -> None:
    outcome = store.push([up("c1", 0, name="张三"), up("c2", 0, name="b")])
    assert outcome.to_counts() == {
        "inserted": 2, "updated": 0, "unchanged": 0, "deleted": 0, "conflicts": 0
    }  # fmt: skip
    assert [(r.index, r.status, r.conflict_id) for r in outcome.results] == [
        (0, "inserted", None),
        (1, "inserted", None),
    ]
    row = store.row("c1")
    assert row is not None
    assert row["data"] == {"name": "张三"}
    assert bytes(row["content_hash"]) == content_hash({"name": "张三"})
    assert (row["version"], row["source"], row["receipt_id"], row["deleted"]) == (
        1, "crm", "rcp_1", False
    )  # fmt: skip
    assert row["updated_at"] == T0


def test_identical_data_is_unchanged_and_costs_no_write(store: Store) -> None:
    store.push([up("c1", 0, a=1, b={"x": [1, 2]})])
    before = store.row("c1")
    for strategy in ("timestamp_priority", "source_priority", "keep_both", "manual_review",
                     "merge_fields"):  # fmt: skip
        # Same content, other key order, even a newer time: nothing is written.
        outcome = store.push([up("c1", 5, b={"x": [1, 2]}, a=1)], strategy)
        assert statuses(outcome) == ["unchanged"], strategy
    after = store.row("c1")
    assert after == before  # version, ingested_at, updated_at and xmin: the row was not touched
    assert store.conflicts() == []


def test_keys_with_escapes_and_unicode_round_trip(store: Store) -> None:
    key = "a\tb\\c\nd é"
    data = {"t": "tab\there", "b": "back\\slash", "n": "line\nbreak", "u": "\u2028 😀"}
    store.push([up(key, 0, **data)])
    row = store.row(key)
    assert row is not None
    assert row["data"] == data
    assert statuses(store.push([up(key, 1, **data)])) == ["unchanged"]


def test_delete_makes_a_tombstone_and_repeated_or_missing_deletes_are_unchanged(
    store: Store,
) -> None:
    store.push([up("c1", 0, a=1)])
    outcome = store.push([delete("c1", 1), delete("c1", 2), delete("never", 1)])
    assert statuses(outcome) == ["deleted", "unchanged", "unchanged"]
    row = store.row("c1")
    assert row is not None
    assert (row["deleted"], row["data"], row["version"]) == (True, None, 2)
    assert bytes(row["content_hash"]) == TOMBSTONE_HASH
    assert store.row("never") is None
    # An upsert onto a tombstone brings the record back as a new one.
    assert statuses(store.push([up("c1", 3, a=2)])) == ["inserted"]
    row = store.row("c1")
    assert row is not None
    assert (row["deleted"], row["data"], row["version"]) == (False, {"a": 2}, 3)


def test_timestamp_priority_applies_newer_and_equal_and_records_stale_writes(
    store: Store,
) -> None:
    store.push([up("c1", 10, v=1), up("c2", 10, v=1)])
    outcome = store.push([up("c1", 10, v=2), up("c2", 9, v=3), delete("c1", 5)])
    assert statuses(outcome) == ["updated", "conflict", "conflict"]
    assert outcome.conflicts == 2
    c1, c2 = store.row("c1"), store.row("c2")
    assert c1 is not None
    assert c2 is not None
    assert (c1["data"], c1["version"]) == ({"v": 2}, 2)
    assert (c2["data"], c2["version"]) == ({"v": 1}, 1)
    rows = {row["id"]: row for row in store.conflicts()}
    stale = rows[outcome.results[1].conflict_id]
    assert (stale["status"], stale["reason"], stale["strategy"]) == (
        "AUTO_RESOLVED", "stale write", "timestamp_priority"
    )  # fmt: skip
    assert stale["current_data"] == {"v": 1}
    assert stale["incoming_data"] == {"v": 3}
    assert (stale["current_version"], stale["current_source"]) == (1, "crm")
    assert bytes(stale["current_hash"]) == content_hash({"v": 1})
    stale_delete = rows[outcome.results[2].conflict_id]
    # The current version at the time of the conflict: the one written earlier in the batch.
    assert (stale_delete["incoming_op"], stale_delete["current_data"]) == ("delete", {"v": 2})
    assert stale_delete["current_version"] == 2


def test_an_older_upsert_cannot_resurrect_a_newer_delete(store: Store) -> None:
    store.push([up("c1", 0, v=1)])
    store.push([delete("c1", 10)])
    outcome = store.push([up("c1", 5, v=2)])
    assert statuses(outcome) == ["conflict"]
    row = store.row("c1")
    assert row is not None
    assert row["deleted"] is True
    conflict = store.conflicts()[0]
    assert conflict["current_data"] is None
    assert bytes(conflict["current_hash"]) == TOMBSTONE_HASH


def test_source_priority_ranks_sources_and_falls_back_to_time(store: Store) -> None:
    erp = SourceConfig("erp", 5, "source_priority")
    crm = SourceConfig("crm", 1, "source_priority")
    ranks = {"erp": 5, "crm": 1}
    store.push([up("c1", 10, v="erp"), up("c2", 0, v="crm")], "source_priority", source=erp,
               priorities=ranks)  # fmt: skip
    # crm ranks lower than erp: its write loses even though it is newer.
    outcome = store.push([up("c1", 20, v="crm")], "source_priority", source=crm,
                         priorities=ranks)  # fmt: skip
    assert statuses(outcome) == ["conflict"]
    assert store.conflicts()[0]["reason"] == "lower source priority"
    # erp outranks the stored crm... erp version: an older erp write still wins over crm.
    store.push([up("c3", 10, v="crm")], "source_priority", source=crm, priorities=ranks)
    outcome = store.push([up("c3", 1, v="erp")], "source_priority", source=erp, priorities=ranks)
    assert statuses(outcome) == ["updated"]
    row = store.row("c3")
    assert row is not None
    assert (row["data"], row["source"]) == ({"v": "erp"}, "erp")
    # Same source: timestamps decide.
    outcome = store.push([up("c3", 0, v="old")], "source_priority", source=erp, priorities=ranks)
    assert statuses(outcome) == ["conflict"]
    assert store.conflicts()[-1]["reason"] == "stale write"
    # A source missing from the ranking counts as 0.
    other = SourceConfig("other", 0, "source_priority")
    outcome = store.push([up("c2", 99, v="other")], "source_priority", source=other,
                         priorities=ranks)  # fmt: skip
    assert statuses(outcome) == ["conflict"]


def test_keep_both_keeps_current_and_stores_the_incoming_beside_it(store: Store) -> None:
    store.push([up("c1", 0, v=1)], "keep_both")
    outcome = store.push([up("c1", 5, v=2), up("c2", 5, v=1), delete("c1", 6)], "keep_both")
    assert statuses(outcome) == ["conflict", "inserted", "conflict"]
    row = store.row("c1")
    assert row is not None
    assert (row["data"], row["version"]) == ({"v": 1}, 1)
    kept = store.conflicts()
    assert {(c["status"], c["incoming_op"]) for c in kept} == {
        ("KEPT_BOTH", "upsert"), ("KEPT_BOTH", "delete")
    }  # fmt: skip
    assert {str(c["incoming_data"]) for c in kept} == {"{'v': 2}", "None"}


def test_keep_both_and_manual_review_let_a_push_supersede_its_own_writes(store: Store) -> None:
    for strategy in ("keep_both", "manual_review"):
        key = f"k-{strategy}"
        outcome = store.push([up(key, 0, v=1), up(key, 1, v=2)], strategy)
        assert statuses(outcome) == ["inserted", "updated"]
        row = store.row(key)
        assert row is not None
        assert (row["data"], row["version"]) == ({"v": 2}, 2)
    assert store.conflicts() == []


def test_manual_review_records_a_pending_conflict(store: Store) -> None:
    store.push([up("c1", 0, v=1)])
    outcome = store.push([up("c1", 5, v=2)], "manual_review")
    assert statuses(outcome) == ["conflict"]
    (conflict,) = store.conflicts()
    assert (conflict["status"], conflict["reason"]) == ("PENDING", "manual review")
    assert conflict["id"] == outcome.results[0].conflict_id
    row = store.row("c1")
    assert row is not None
    assert row["data"] == {"v": 1}


def test_merge_fields_takes_the_newer_field_and_records_the_fields_kept(store: Store) -> None:
    store.push([up("c1", 10, name="a", city="x")], "merge_fields")
    row = store.row("c1")
    assert row is not None
    assert row["field_times"] == {"name": at(10), "city": at(10)}
    # Older name (loses), new phone (no time yet: taken).
    outcome = store.push([up("c1", 5, name="old", phone="1")], "merge_fields")
    assert statuses(outcome) == ["updated"]
    conflict_id = outcome.results[0].conflict_id
    assert conflict_id is not None
    row = store.row("c1")
    assert row is not None
    assert row["data"] == {"name": "a", "city": "x", "phone": "1"}
    assert row["updated_at"] == T0 + timedelta(minutes=10)
    assert bytes(row["content_hash"]) == content_hash(row["data"])
    (conflict,) = store.conflicts()
    assert (conflict["id"], conflict["status"], conflict["reason"]) == (
        conflict_id, "AUTO_RESOLVED", "fields kept: name"
    )  # fmt: skip
    # Newer city wins; a tie on phone goes to the incoming value.
    outcome = store.push([up("c1", 20, city="y"), up("c1", 5, phone="2")], "merge_fields")
    assert statuses(outcome) == ["updated", "updated"]
    row = store.row("c1")
    assert row is not None
    assert row["data"] == {"name": "a", "city": "y", "phone": "2"}
    assert row["version"] == 4
    # Only losing fields: nothing changes, the record is a conflict.
    outcome = store.push([up("c1", 0, name="older")], "merge_fields")
    assert statuses(outcome) == ["conflict"]
    assert store.conflicts()[-1]["reason"] == "fields kept: name"
    # Same values as stored in a partial document: unchanged.
    assert statuses(store.push([up("c1", 30, city="y")], "merge_fields")) == ["unchanged"]


def test_merge_fields_deletes_follow_the_newest_field(store: Store) -> None:
    store.push([up("c1", 10, a=1)], "merge_fields")
    store.push([up("c1", 20, b=2)], "merge_fields")
    assert statuses(store.push([delete("c1", 15)], "merge_fields")) == ["conflict"]
    assert statuses(store.push([delete("c1", 20)], "merge_fields")) == ["deleted"]
    row = store.row("c1")
    assert row is not None
    assert (row["deleted"], row["field_times"]) == (True, None)


def test_duplicate_keys_in_a_batch_apply_in_order(store: Store) -> None:
    outcome = store.push(
        [up("k", 0, v=1), up("k", 1, v=2), up("k", 1, v=2), delete("k", 2), up("k", 3, v=3),
         up("k", 2, v=9)]
    )  # fmt: skip
    assert statuses(outcome) == ["inserted", "updated", "unchanged", "deleted", "inserted",
                                 "conflict"]  # fmt: skip
    row = store.row("k")
    assert row is not None
    assert (row["data"], row["version"], row["deleted"]) == ({"v": 3}, 4, False)
    assert row["updated_at"] == T0 + timedelta(minutes=3)
    (conflict,) = store.conflicts()
    assert conflict["current_data"] == {"v": 3}


def test_a_record_stored_earlier_and_repeated_in_a_batch(store: Store) -> None:
    store.push([up("k", 0, v=1)])
    outcome = store.push([up("k", 0, v=1), up("k", 1, v=2), up("k", 2, v=1)])
    assert statuses(outcome) == ["unchanged", "updated", "updated"]
    row = store.row("k")
    assert row is not None
    assert (row["data"], row["version"]) == ({"v": 1}, 3)


def test_times_in_other_offsets_compare_as_instants(store: Store) -> None:
    store.push([{"key": "k", "updated_at": "2026-11-20T16:00:00+08:00", "data": {"v": 1}}])
    # 08:30Z is after 16:00+08:00 (08:00Z).
    outcome = store.push([{"key": "k", "updated_at": "2026-11-20T08:30:00Z", "data": {"v": 2}}])
    assert statuses(outcome) == ["updated"]
    outcome = store.push(
        [{"key": "k", "updated_at": "2026-11-20T16:10:00+08:00", "data": {"v": 3}}]
    )
    assert statuses(outcome) == ["conflict"]


def test_tenants_never_touch_each_other(store: Store) -> None:
    with store.db.transaction() as tx:
        other = Store(store.db, create_tenant(tx, "globex").id)
    store.push([up("shared", 10, owner="acme")])
    outcome = other.push([up("shared", 0, owner="globex")])
    assert statuses(outcome) == ["inserted"]  # not a stale write against acme's record
    assert statuses(other.push([delete("shared", 20)])) == ["deleted"]
    mine = store.row("shared")
    assert mine is not None
    assert (mine["data"], mine["deleted"]) == ({"owner": "acme"}, False)
    assert other.conflicts() == []
    assert store.conflicts() == []


def test_entities_are_separate_record_sets(store: Store) -> None:
    store.push([up("k", 0, v=1)], entity="customers")
    assert statuses(store.push([up("k", 0, v=2)], entity="orders")) == ["inserted"]


def test_a_poison_record_rejects_only_itself(store: Store) -> None:
    raw: list[Any] = [
        up("ok-1", 0, v=1),
        {"key": "nul", "updated_at": at(0), "data": {"text": "a\x00b"}},
        {"key": "big", "updated_at": at(0), "data": {"blob": "x" * (300 * 1024)}},
        {"key": "date", "updated_at": "yesterday", "data": {}},
        {"key": "naive", "updated_at": "2026-11-20T08:00:00", "data": {}},
        {"key": "type", "updated_at": at(0), "data": ["not", "an", "object"]},
        {"key": "missing", "updated_at": at(0)},
        {"key": "nan", "updated_at": at(0), "data": {"x": float("nan")}},
        {"key": "surrogate", "updated_at": at(0), "data": {"x": "\ud800"}},
        {"key": "a\x00key", "updated_at": at(0), "data": {}},
        "not a record",
        up("ok-2", 0, v=2),
    ]
    valid, rejected = validate_records(raw)
    assert [index for index, _ in valid] == [0, 11]
    assert [r.index for r in rejected] == list(range(1, 11))
    for rejection in rejected:
        assert rejection.errors
        for error in rejection.errors:
            assert set(error) == {"loc", "msg", "type"}
            assert "a\x00b" not in error["msg"]
            assert "yesterday" not in error["msg"]
    with store.db.transaction() as tx:
        outcome = apply_batch(
            tx, tenant_id=store.tenant_id, entity="customers", source=CRM,
            strategy="timestamp_priority", records=valid, receipt_id="rcp_poison",
        )  # fmt: skip
    assert [(r.index, r.status) for r in outcome.results] == [(0, "inserted"), (11, "inserted")]


def test_concurrent_pushes_to_one_entity_serialise_and_end_consistent(clean_db: str) -> None:
    with database(clean_db).transaction() as tx:
        tenant_id = create_tenant(tx, "race").id
    keys = [f"k{i:04d}" for i in range(600)]
    results: dict[str, BatchOutcome] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def push(name: str, minutes: int) -> None:
        db = Database(clean_db, application_name=f"race-{name}")
        try:
            store = Store(db, tenant_id)
            barrier.wait()
            results[name] = store.push([up(k, minutes, by=name) for k in keys],
                                       receipt_id=f"rcp_{name}")  # fmt: skip
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=push, args=args) for args in (("old", 1), ("new", 2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    old, new = results["old"], results["new"]
    assert old.inserted + new.inserted == len(keys)
    # Whichever ran first, the newer push's data is what is stored, once per key.
    assert new.conflicts == 0
    assert old.conflicts in (0, len(keys))
    with database(clean_db).transaction() as tx:
        stored = tx.rows(
            "SELECT data->>'by' AS by, version FROM records WHERE tenant_id = :t", t=tenant_id
        )
    assert len(stored) == len(keys)
    assert {row["by"] for row in stored} == {"new"}
    assert {row["version"] for row in stored} == ({1} if old.conflicts else {2})


def test_an_empty_batch_touches_nothing(store: Store) -> None:
    assert store.push([]).to_counts() == {
        "inserted": 0, "updated": 0, "unchanged": 0, "deleted": 0, "conflicts": 0
    }  # fmt: skip


def test_an_unknown_strategy_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="strategy"):
        store.push([up("k", 0, v=1)], "newest_wins")
    assert store.row("k") is None
