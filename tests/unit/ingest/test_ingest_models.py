"""Record validation and content hashes: what is accepted, what is rejected on its own."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid.ingest.hashing import TOMBSTONE_HASH, canonical_json, content_hash
from hybrid.ingest.models import (
    MAX_DATA_BYTES,
    IncomingRecord,
    Rejection,
    SourceConfig,
    validate_records,
)

AT = "2026-11-20T08:00:00Z"


def record(**fields: Any) -> dict[str, Any]:
    return {"key": "k", "updated_at": AT, "data": {"v": 1}} | fields


def rejected(raw: dict[str, Any] | Any) -> Rejection:
    valid, rejections = validate_records([raw])
    assert not valid
    (rejection,) = rejections
    return rejection


def test_a_valid_record_defaults_to_upsert_with_an_aware_time() -> None:
    (index, parsed), = validate_records([record(data={"name": "张三"})])[0]  # fmt: skip
    assert index == 0
    assert parsed.op == "upsert"
    assert parsed.updated_at == datetime(2026, 11, 20, 8, tzinfo=timezone.utc)
    assert parsed.content_hash == content_hash({"name": "张三"})
    assert parsed.canonical_data == '{"name":"张三"}'.encode()


def test_a_delete_has_no_data_and_the_tombstone_hash() -> None:
    for raw in ({"key": "k", "op": "delete", "updated_at": AT},
                {"key": "k", "op": "delete", "updated_at": AT, "data": None}):  # fmt: skip
        ((_, parsed),), rejections = validate_records([raw])
        assert not rejections
        assert parsed.data is None
        assert parsed.content_hash == TOMBSTONE_HASH


@pytest.mark.parametrize(
    ("raw", "loc", "error_type"),
    [
        (record(key=""), ["key"], "string_too_short"),
        (record(key="k" * 513), ["key"], "string_too_long"),
        (record(key="a\x00b"), ["key"], "key_invalid"),
        (record(key=" padded"), ["key"], "key_invalid"),
        (record(key="padded\n"), ["key"], "key_invalid"),
        (record(key=7), ["key"], "string_type"),
        (record(op="merge"), ["op"], "literal_error"),
        (record(updated_at="2026-11-20T08:00:00"), ["updated_at"], "datetime_format"),
        (record(updated_at="2026-11-20T08:00:00.125"), ["updated_at"], "timezone_aware"),
        (record(updated_at="yesterday"), ["updated_at"], "datetime_format"),
        (record(updated_at=1763625600), ["updated_at"], "datetime_format"),
        (record(updated_at="1763625600"), ["updated_at"], "datetime_format"),
        (record(updated_at="2026-13-40T08:00:00Z"), ["updated_at"], "datetime_from_date_parsing"),
        (record(data=None), ["data"], "data_required"),
        ({"key": "k", "updated_at": AT}, ["data"], "data_required"),
        (record(data=["a"]), ["data"], "dict_type"),
        (record(data="text"), ["data"], "dict_type"),
        (record(op="delete"), ["data"], "data_forbidden"),
        (record(data={"t": "a\x00"}), ["data"], "data_contains_nul"),
        (record(data={"deep": {"k\x00": 1}}), ["data"], "data_contains_nul"),
        (record(data={"x": float("nan")}), ["data"], "data_not_json"),
        (record(data={"x": [float("-inf")]}), ["data"], "data_not_json"),
        (record(data={"x": "\udc80"}), ["data"], "data_not_json"),
        (record(data={"x": {1, 2}}), ["data"], "data_not_json"),
        (record(data={"b": "x" * MAX_DATA_BYTES}), ["data"], "data_too_large"),
        (record(extra=1), ["extra"], "extra_forbidden"),
    ],
)
def test_an_invalid_record_is_rejected_with_a_located_reason(
    raw: dict[str, Any], loc: list[str], error_type: str
) -> None:
    errors = rejected(raw).errors
    assert {"loc": loc, "type": error_type} in [
        {"loc": e["loc"], "type": e["type"]} for e in errors
    ]


def test_nesting_deeper_than_32_levels_is_rejected_and_32_is_accepted() -> None:
    def nested(depth: int) -> dict[str, Any]:
        doc: dict[str, Any] = {"leaf": 1}
        for _ in range(depth - 1):
            doc = {"n": doc}
        return doc

    assert validate_records([record(data=nested(32))])[1] == []
    assert rejected(record(data=nested(33))).errors[0]["type"] == "data_too_deep"
    assert rejected(record(data=nested(5000))).errors[0]["type"] == "data_too_deep"
    flat_but_bracketed = {f"k{i}": [] for i in range(100)}  # many brackets, depth 2
    assert validate_records([record(data=flat_but_bracketed)])[1] == []


def test_a_literal_backslash_u0000_text_is_not_a_nul() -> None:
    assert validate_records([record(data={"text": "\\u0000"})])[1] == []


def test_data_at_the_size_limit_is_accepted() -> None:
    filler = "x" * (MAX_DATA_BYTES - len('{"b":""}'))
    assert validate_records([record(data={"b": filler})])[1] == []


def test_errors_never_echo_input_values() -> None:
    secret = "hk_0123456789abcdef_" + "s" * 43
    raw = [
        record(key=secret + "\x00"),
        record(updated_at=secret),
        record(data={"x": secret + "\x00"}),
        record(**{secret: 1}),
        record(op=secret),
    ]
    _, rejections = validate_records(raw)
    assert len(rejections) == 5
    assert secret not in json.dumps([r.errors for r in rejections])


def test_poison_records_reject_only_themselves_in_order() -> None:
    raw: list[Any] = [record(key=f"k{i}") for i in range(10)]
    raw[2] = record(data={"x": "\x00"})
    raw[5] = "not an object"
    raw[7] = record(key="\ud800")  # pydantic raises UnicodeEncodeError, not a ValidationError
    raw[9] = None
    valid, rejections = validate_records(raw)
    assert [i for i, _ in valid] == [0, 1, 3, 4, 6, 8]
    assert [r.index for r in rejections] == [2, 5, 7, 9]
    assert [parsed.key for _, parsed in valid] == ["k0", "k1", "k3", "k4", "k6", "k8"]


def test_an_empty_batch_is_valid() -> None:
    assert validate_records([]) == ([], [])


def test_a_clean_batch_of_5000_is_all_valid() -> None:
    raw = [
        record(key=f"cust-{i}", data={"name": f"Customer {i}", "city": "Shenzhen", "n": i,
                                       "tags": ["a", "b"], "ok": True})
        for i in range(5000)
    ]  # fmt: skip
    valid, rejections = validate_records(raw)
    assert [index for index, _ in valid] == list(range(5000))
    assert not rejections


def test_source_config_is_a_frozen_value() -> None:
    source = SourceConfig("crm", 2, "source_priority")
    with pytest.raises(AttributeError):
        source.priority = 3  # type: ignore[misc]


def test_incoming_record_is_immutable() -> None:
    parsed = IncomingRecord.model_validate(record())
    with pytest.raises(ValueError, match="frozen"):
        parsed.key = "other"  # type: ignore[misc]


# --- hashing --------------------------------------------------------------------------------


def test_canonical_json_sorts_keys_compacts_and_keeps_unicode() -> None:
    assert canonical_json({"b": [1, {"d": 1, "c": None}], "a": "é"}) == (
        '{"a":"é","b":[1,{"c":null,"d":1}]}'.encode()
    )


def test_the_hash_ignores_key_order_but_not_values_or_types() -> None:
    assert content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": "1"})
    assert content_hash({"a": 1}) != content_hash({"a": True})
    assert content_hash({"a": 1}) != content_hash({"a": 1.0})
    assert content_hash(None) == TOMBSTONE_HASH != content_hash({})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)  # fmt: skip


@settings(max_examples=200)
@given(st.dictionaries(st.text(max_size=5), json_values, max_size=5))
def test_the_hash_survives_a_json_round_trip(data: dict[str, Any]) -> None:
    # What a client sends and what is read back from jsonb hash the same.
    assert content_hash(json.loads(json.dumps(data))) == content_hash(data)
    reordered = dict(reversed(list(data.items())))
    assert canonical_json(reordered) == canonical_json(data)


def test_updated_at_keeps_its_instant_across_offsets() -> None:
    ((_, a), (_, b)), _ = validate_records(
        [record(updated_at="2026-11-20T16:00:00+08:00"), record(updated_at=AT)]
    )
    assert a.updated_at == b.updated_at
    # Stored in UTC: PostgreSQL refuses offsets beyond ±15:59, which Python allows.
    assert a.updated_at.utcoffset() == timedelta(0)


def test_far_offsets_are_normalised_not_rejected() -> None:
    (((_, stored),), rejected) = validate_records([record(updated_at="1827-11-12T08:10:26+16:18")])
    assert not rejected
    assert stored.updated_at.isoformat() == "1827-11-11T15:52:26+00:00"


def test_the_engine_knows_every_strategy_of_the_model() -> None:
    from hybrid.ingest import engine, models

    assert set(models.STRATEGIES) == engine._STRATEGIES
