from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hybrid.events import InvocationContext

FIXTURES = Path(__file__).parents[2] / "events"


def load(name: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return raw


def test_scf_context_dict_is_read_with_environment_decoded_from_its_json_string() -> None:
    context = InvocationContext.from_raw(load("context.json"))

    assert context.request_id == "4ca7089c-3bb0-48cf-bcdb-26d130fed2ae"
    assert context.function_name == "test"
    assert context.namespace == "default"
    assert context.memory_limit_mb == 128
    assert context.time_limit_ms == 3000
    assert context.function_version == "$LATEST"
    assert context.region == "ap-chengdu"
    assert context.environment == {"SCF_NAMESPACE": "default"}


def test_object_with_attributes_is_read_like_the_dict() -> None:
    raw = SimpleNamespace(**load("context.json"))

    assert InvocationContext.from_raw(raw).function_name == "test"
    assert InvocationContext.from_raw(raw).memory_limit_mb == 128


def test_none_gives_a_fresh_uuid4_request_id_and_defaults() -> None:
    context = InvocationContext.from_raw(None)

    assert uuid.UUID(context.request_id).version == 4
    assert context.function_name == ""
    assert context.time_limit_ms is None
    assert context.environment == {}


def test_numbers_sent_as_strings_are_read_as_ints() -> None:
    raw = load("context.json") | {"memory_limit_in_mb": "512", "time_limit_in_ms": " 900000 "}

    context = InvocationContext.from_raw(raw)

    assert context.memory_limit_mb == 512
    assert context.time_limit_ms == 900000


@pytest.mark.parametrize("environment", ["{not json", "[1, 2]", "null", 42, "[" * 100_000])
def test_unreadable_environment_gives_an_empty_mapping(environment: object) -> None:
    context = InvocationContext.from_raw(load("context.json") | {"environment": environment})

    assert context.environment == {}


@pytest.mark.parametrize(
    "raw",
    [
        {"request_id": 5, "memory_limit_in_mb": "lots", "time_limit_in_ms": -1},
        {"memory_limit_in_mb": True, "time_limit_in_ms": 1.5, "namespace": ["x"]},
        42,
        "context",
        [],
    ],
)
def test_garbage_never_raises_and_falls_back_to_defaults(raw: object) -> None:
    context = InvocationContext.from_raw(raw)

    assert context.request_id
    assert context.memory_limit_mb is None
    assert context.time_limit_ms is None


def test_remaining_ms_counts_down_from_the_time_limit() -> None:
    context = InvocationContext("rid", time_limit_ms=3000, started_monotonic=time.monotonic() - 1)

    remaining = context.remaining_ms()

    assert 1500 < remaining <= 2000


def test_remaining_ms_never_goes_negative() -> None:
    context = InvocationContext("rid", time_limit_ms=10, started_monotonic=time.monotonic() - 5)

    assert context.remaining_ms() == 0


def test_remaining_ms_without_a_known_limit_assumes_the_platform_maximum() -> None:
    context = InvocationContext("rid")

    assert 899_000 < context.remaining_ms() <= 900_000


def test_started_monotonic_is_taken_at_construction() -> None:
    before = time.monotonic()
    context = InvocationContext.from_raw(load("context.json"))

    assert before <= context.started_monotonic <= time.monotonic()


def test_an_invocation_context_passed_again_is_returned_unchanged() -> None:
    context = InvocationContext.from_raw(load("context.json"))

    assert InvocationContext.from_raw(context) is context
