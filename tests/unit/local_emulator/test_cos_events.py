"""COS object events: the event shape, trigger matching, and notify → function via the emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local_emulator.cos_events import cos_event, event_matches, trigger_matches
from local_emulator.descriptor import CosTrigger
from local_emulator.emulator import Emulator

NOTIFICATION = {
    "event_name": "cos:ObjectCreated:Put",
    "bucket": "uploads-1250000000",
    "key": "incoming/report 1!.csv",
    "size": 557,
    "etag": "0d7316832fef232e5dcdcf81f39bfdba",
    "source_ip": "127.0.0.1",
    "request_id": "NjI1OTNmOWNfNGIzN2YyMDlfMmJhZjVfNDJkZTBmYQ==",
}


def trigger(
    prefix: str = "", suffix: str = "", events: tuple[str, ...] = ("cos:ObjectCreated:*",)
) -> CosTrigger:
    return CosTrigger("cos", "uploads", "t", True, "uploads-1250000000", prefix, suffix, events)


def test_event_matches_the_real_capture_shape() -> None:
    event = cos_event(NOTIFICATION, region="ap-shanghai", function_name="uploads")
    (record,) = event["Records"]
    assert record["cos"] == {
        "cosBucket": {
            "appid": "1250000000",
            "cosRegion": "ap-shanghai",
            "name": "uploads",
            "region": "sh",
            "s3Region": "ap-shanghai",
        },
        "cosNotificationId": "unkown",
        "cosObject": {
            "key": "/1250000000/uploads/incoming/report 1!.csv",
            "meta": {
                "Content-Type": "",
                "ETag": '"0d7316832fef232e5dcdcf81f39bfdba"',
                "x-cos-request-id": NOTIFICATION["request_id"],
                "x-cos-storage-class": "Standard",
            },
            "size": 557,
            "url": "http://uploads-1250000000.cos.ap-shanghai.myqcloud.com/incoming/report%201%21.csv",
            "vid": "",
        },
        "cosSchemaVersion": "1.0",
    }
    cos_part = record["event"]
    assert isinstance(cos_part.pop("eventTime"), int)
    assert isinstance(cos_part.pop("reqid"), int)
    assert cos_part == {
        "eventName": "cos:ObjectCreated:Put",
        "eventQueue": "qcs:0:scf:ap-shanghai:appid/1250000000:default.uploads.$DEFAULT",
        "eventSource": "qcs::cos",
        "eventVersion": "1.0",
        "requestParameters": {"requestHeaders": {}, "requestSourceIP": "127.0.0.1"},
        "reservedInfo": "",
    }


def test_event_patterns() -> None:
    assert event_matches("cos:ObjectCreated:*", "cos:ObjectCreated:Put")
    assert event_matches("cos:ObjectCreated:*", "ObjectCreated:CompleteMultipartUpload")
    assert event_matches("cos:ObjectCreated:Post", "cos:ObjectCreated:Post")
    assert not event_matches("cos:ObjectCreated:Post", "cos:ObjectCreated:Put")
    assert not event_matches("cos:ObjectCreated:*", "cos:ObjectRemove:Delete")


@pytest.mark.parametrize(
    ("cos_trigger", "bucket", "key", "expected"),
    [
        (trigger("incoming/"), "uploads-1250000000", "incoming/a.csv", True),
        (trigger("incoming/"), "uploads-1250000000", "other/a.csv", False),
        (trigger(suffix=".csv"), "uploads-1250000000", "x/a.json", False),
        (trigger(suffix=".csv"), "uploads", "x/a.csv", True),
        (trigger(), "uploads-1300000000", "a", False),
        (trigger(), "archive-1250000000", "a", False),
        (trigger(events=("cos:ObjectRemove:*",)), "uploads-1250000000", "a", False),
    ],
)
def test_trigger_matching(cos_trigger: CosTrigger, bucket: str, key: str, expected: bool) -> None:
    assert trigger_matches(cos_trigger, bucket, key, "cos:ObjectCreated:Put") is expected


@pytest.fixture
def emulator(fixture_file: Path, tmp_path: Path, overrides: dict[str, str]) -> Iterator[Emulator]:
    with Emulator(
        fixture_file,
        tmp_path / "data",
        env_overrides=overrides,
        start_stack=False,
        retry_delays=(0.05, 0.05),
    ) as running:
        yield running


def test_notify_invokes_the_matching_cos_function_with_the_cos_event(
    emulator: Emulator,
    out_dir: Path,
    read_records: Callable[[Path], list[Any]],
    wait_for: Callable[..., Any],
) -> None:
    response = requests.post(f"{emulator.url}/_emulator/cos-events", json=NOTIFICATION, timeout=10)
    assert response.status_code == 202
    assert response.json() == {"functions": ["uploads"]}

    (event,) = wait_for(lambda: read_records(out_dir / "uploads.jsonl"))
    record = event["Records"][0]
    assert record["cos"]["cosObject"]["key"] == "/1250000000/uploads/incoming/report 1!.csv"
    assert record["cos"]["cosBucket"]["region"] == "gz"
    assert record["event"]["eventName"] == "cos:ObjectCreated:Put"
    assert record["event"]["eventQueue"].endswith(":default.uploads.$DEFAULT")


def test_prefix_filter_excludes_other_keys(
    emulator: Emulator, out_dir: Path, read_records: Callable[[Path], list[Any]]
) -> None:
    other = {**NOTIFICATION, "key": "elsewhere/report.csv"}
    response = requests.post(f"{emulator.url}/_emulator/cos-events", json=other, timeout=10)
    assert response.json() == {"functions": []}
    assert read_records(out_dir / "uploads.jsonl") == []


@pytest.mark.slow
def test_an_upload_to_the_embedded_cos_reaches_the_cos_function(
    fixture_file: Path,
    tmp_path: Path,
    overrides: dict[str, str],
    redis_url: str,
    out_dir: Path,
    read_records: Callable[[Path], list[Any]],
    wait_for: Callable[..., Any],
) -> None:
    qcloud_cos = pytest.importorskip("qcloud_cos")
    pytest.importorskip("local_emulator.stack")
    external = {
        "DATABASE_URL": "postgresql://unused@127.0.0.1:1/unused",  # only COS is embedded here
        "REDIS_URL": redis_url,
        "COS_BUCKET": "uploads-1250000000",
    }
    with Emulator(
        fixture_file, tmp_path / "data", env_overrides={**overrides, **external}
    ) as emulator:
        assert emulator.endpoints is not None
        cos = emulator.endpoints.cos
        client = qcloud_cos.CosS3Client(qcloud_cos.CosConfig(**cos.sdk_config_kwargs()))
        client.put_object(Bucket=cos.bucket, Key="incoming/hello.txt", Body=b"hello world")
        client.put_object(Bucket=cos.bucket, Key="ignored/hello.txt", Body=b"not for uploads")

        (event,) = wait_for(lambda: read_records(out_dir / "uploads.jsonl"))
    cos_object = event["Records"][0]["cos"]["cosObject"]
    assert cos_object["key"] == "/1250000000/uploads/incoming/hello.txt"
    assert cos_object["size"] == 11
    assert cos_object["meta"]["ETag"] == '"5eb63bbbe01eeed093cb22bb8f5acdc3"'
    assert len(read_records(out_dir / "uploads.jsonl")) == 1
