from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from hybrid.events import MalformedEventError, is_cos_event, parse_cos_event

FIXTURES = Path(__file__).parents[2] / "events"


def load(name: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return raw


def test_cos_doc_event_strips_the_appid_and_bucket_prefix_from_the_key() -> None:
    [event] = parse_cos_event(load("cos.json"))

    assert event.key == "testfile"
    assert event.bucket == "testpic"
    assert event.appid == "1253970026"
    assert event.bucket_full_name == "testpic-1253970026"
    assert event.size == 1029
    assert event.etag is None
    assert event.event_name == "cos:ObjectCreated:*"
    assert event.is_created
    assert event.event_time == datetime(2018, 12, 19, 7, 49, 30, tzinfo=timezone.utc)
    assert event.source_ip == "192.168.15.101"
    assert event.url == "http://testpic-1253970026.cos.ap-chengdu.myqcloud.com/testfile"


def test_cos_doc_event_short_region_is_replaced_by_the_long_one_from_the_url() -> None:
    [event] = parse_cos_event(load("cos.json"))

    assert event.region == "ap-chengdu"


def test_cos_real_capture_prefers_cos_region_and_keeps_the_key_undecoded() -> None:
    [event] = parse_cos_event(load("cos_real.json"))

    assert event.region == "ap-shanghai"
    assert event.key == "!!!!!!!"
    assert event.url.endswith("/%21%21%21%21%21%21%21")
    assert event.bucket == "bookshelfplus"
    assert event.bucket_full_name == "bookshelfplus-1302260381"
    assert event.event_name == "cos:ObjectCreated:Put"
    assert event.etag == "0d7316832fef232e5dcdcf81f39bfdba"
    assert event.size == 557
    assert event.event_time == datetime(2022, 4, 15, 9, 49, 16, tzinfo=timezone.utc)
    assert event.source_ip == "117.154.65.144"


def test_nested_key_with_percent_signs_is_kept_verbatim() -> None:
    raw = load("cos_real.json")
    raw["Records"][0]["cos"]["cosObject"]["key"] = "/1302260381/bookshelfplus/a/b%20c/d.txt"

    [event] = parse_cos_event(raw)

    assert event.key == "a/b%20c/d.txt"


def test_short_region_is_used_when_nothing_better_is_sent() -> None:
    raw = load("cos.json")
    raw["Records"][0]["cos"]["cosObject"]["url"] = ""

    [event] = parse_cos_event(raw)

    assert event.region == "cd"


def test_removal_event_is_not_created_and_may_lack_size() -> None:
    raw = load("cos.json")
    raw["Records"][0]["event"]["eventName"] = "cos:ObjectRemove:Delete"
    del raw["Records"][0]["cos"]["cosObject"]["size"]

    [event] = parse_cos_event(raw)

    assert not event.is_created
    assert event.size == 0


def test_bucket_name_sent_with_appid_suffix_is_shortened() -> None:
    raw = load("cos.json")
    raw["Records"][0]["cos"]["cosBucket"]["name"] = "testpic-1253970026"
    raw["Records"][0]["cos"]["cosBucket"]["appid"] = 1253970026

    [event] = parse_cos_event(raw)

    assert event.bucket == "testpic"
    assert event.key == "testfile"


def test_several_records_are_returned_in_order() -> None:
    raw = load("cos.json")
    second = json.loads(json.dumps(raw["Records"][0]))
    second["cos"]["cosObject"]["key"] = "/1253970026/testpic/other"
    raw["Records"].append(second)

    assert [e.key for e in parse_cos_event(raw)] == ["testfile", "other"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.update(Records="x"),
        lambda r: r["Records"].__setitem__(0, "record"),
        lambda r: r["Records"][0]["cos"].pop("cosBucket"),
        lambda r: r["Records"][0]["cos"]["cosObject"].update(key=None),
        lambda r: r["Records"][0]["cos"]["cosObject"].update(size="big"),
        lambda r: r["Records"][0]["cos"]["cosObject"].update(size=-1),
        lambda r: r["Records"][0]["cos"]["cosObject"].update(size=True),
        lambda r: r["Records"][0]["event"].update(eventName=None),
        lambda r: r["Records"][0]["event"].update(eventTime=10**30),
        lambda r: r["Records"][0]["event"].update(requestParameters=[]),
        lambda r: r["Records"][0]["cos"]["cosObject"]["meta"].update(ETag=1),
    ],
)
def test_wrong_shapes_raise_malformed_event(mutate: Any) -> None:
    raw = load("cos.json")
    mutate(raw)

    with pytest.raises(MalformedEventError):
        parse_cos_event(raw)


def test_is_cos_event_recognises_cos_records_only() -> None:
    assert is_cos_event(load("cos.json"))
    assert is_cos_event(load("cos_real.json"))
    assert not is_cos_event(load("cmq_topic.json"))
    assert not is_cos_event({"Records": []})
    assert not is_cos_event(None)
