"""Property: for random sequences of batches, the stored state and every record's outcome equal
a pure-Python model that applies the accepted records one by one under the strategy."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid.db import database
from hybrid.ingest.engine import apply_batch
from hybrid.ingest.models import SourceConfig, validate_records
from hybrid.tenants import create_tenant

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
KEYS = ("a", "b", "c")
FIELDS = ("x", "y", "z")
SOURCES = {"low": 1, "high": 2, "unranked": 0}
OFFSETS = (timezone.utc, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5)))
STRATEGIES = ("timestamp_priority", "source_priority", "keep_both", "manual_review",
              "merge_fields")  # fmt: skip
_names = itertools.count()


@dataclass(frozen=True)
class Version:
    data: dict[str, Any] | None  # None: deleted
    at: datetime
    source: str
    receipt: str
    version: int
    field_times: dict[str, datetime] | None


def model_apply(
    state: dict[str, Version],
    records: list[dict[str, Any]],
    strategy: str,
    source: str,
    receipt: str,
) -> list[str]:
    """The specification, written plainly: each record against the state before it."""
    return [_model_record(state, record, strategy, source, receipt) for record in records]


def _model_record(
    state: dict[str, Version], record: dict[str, Any], strategy: str, source: str, receipt: str
) -> str:
    key, op, data = record["key"], record["op"], record.get("data")
    at = datetime.fromisoformat(record["updated_at"])
    current = state.get(key)
    live = current is not None and current.data is not None
    version = (current.version if current else 0) + 1
    plain = Version(
        data if op == "upsert" else None, at, source, receipt, version,
        dict.fromkeys(data, at) if strategy == "merge_fields" and data else None,
    )  # fmt: skip
    applied = "deleted" if op == "delete" else "updated" if live else "inserted"
    if op == "upsert" and current is None:
        state[key] = plain
        return "inserted"
    if (op == "upsert" and live and current.data == data) or (op == "delete" and not live):  # type: ignore[union-attr]
        return "unchanged"
    assert current is not None
    if strategy == "timestamp_priority" or (
        strategy == "merge_fields" and (op == "delete" or not live)
    ):
        wins = at >= current.at
    elif strategy == "source_priority":
        mine = SOURCES.get(source, 0)
        theirs = mine if current.source == source else SOURCES.get(current.source, 0)
        wins = mine > theirs or (mine == theirs and at >= current.at)
    elif strategy in ("keep_both", "manual_review"):
        wins = not live or current.receipt == receipt
    else:  # merge_fields onto a live record
        assert current.data is not None
        times = {f: (current.field_times or {}).get(f, current.at) for f in current.data}
        merged, lost = dict(current.data), False
        for name, value in data.items():
            if name not in times or at >= times[name]:
                merged[name], times[name] = value, at
            elif current.data[name] != value:
                lost = True
        if merged == current.data:
            return "conflict" if lost else "unchanged"
        state[key] = Version(merged, max(at, current.at), source, receipt, version, times)
        return "updated"
    if wins:
        state[key] = plain
        return applied
    return "conflict"


def records_strategy() -> st.SearchStrategy[dict[str, Any]]:
    data = st.dictionaries(
        st.sampled_from(FIELDS), st.one_of(st.integers(0, 3), st.sampled_from(["p", "q"])),
        max_size=3,
    )  # fmt: skip
    when = st.tuples(st.integers(0, 4), st.sampled_from(OFFSETS)).map(
        lambda t: (T0 + timedelta(minutes=t[0])).astimezone(t[1]).isoformat()
    )
    upsert = st.fixed_dictionaries(
        {"key": st.sampled_from(KEYS), "op": st.just("upsert"), "updated_at": when, "data": data}
    )
    delete = st.fixed_dictionaries(
        {"key": st.sampled_from(KEYS), "op": st.just("delete"), "updated_at": when}
    )
    return st.one_of(upsert, upsert, delete)


batches_strategy = st.lists(
    st.tuples(st.sampled_from(sorted(SOURCES)), st.lists(records_strategy(), max_size=6)),
    min_size=1,
    max_size=4,
)


@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=batches_strategy)
def test_stored_state_equals_applying_accepted_records_in_order(
    clean_db: str, strategy: str, batches: list[tuple[str, list[dict[str, Any]]]]
) -> None:
    db = database(clean_db)
    with db.transaction() as tx:
        tenant_id = create_tenant(tx, f"prop-{next(_names)}").id  # a fresh tenant per example
    model: dict[str, Version] = {}
    for number, (source, raw) in enumerate(batches):
        receipt = f"rcp_{number}"
        valid, rejected = validate_records(raw)
        assert not rejected
        with db.transaction() as tx:
            outcome = apply_batch(
                tx, tenant_id=tenant_id, entity="e", source=SourceConfig(source, 0, strategy),
                strategy=strategy, records=valid, receipt_id=receipt,  # type: ignore[arg-type]
                source_priorities=SOURCES,
            )  # fmt: skip
        expected = model_apply(model, raw, strategy, source, receipt)
        assert [r.status for r in outcome.results] == expected
        assert [r.index for r in outcome.results] == list(range(len(raw)))
        counts = outcome.to_counts()
        assert sum(counts.values()) == len(raw)
        assert counts["conflicts"] == expected.count("conflict")
    with db.transaction() as tx:
        rows = tx.rows(
            "SELECT key, data, updated_at, deleted, source, version, receipt_id FROM records "
            "WHERE tenant_id = :t",
            t=tenant_id,
        )
    stored = {
        row["key"]: Version(
            None if row["deleted"] else row["data"], row["updated_at"], row["source"],
            row["receipt_id"], row["version"], None,
        )
        for row in rows
    }  # fmt: skip
    assert stored == {key: replace(v, field_times=None) for key, v in model.items()}
