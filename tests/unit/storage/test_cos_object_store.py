"""CosObjectStore against the real local COS emulator (local_emulator.stack, COS only)."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from hybrid.config import CosSettings
from hybrid.storage import (
    ObjectInfo,
    ObjectNotFoundError,
    StorageError,
    StorageUnavailableError,
    clear_object_stores,
    object_store,
)
from hybrid.storage.cos import CosObjectStore

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def cos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from local_emulator.stack import LocalStack

    stack = LocalStack(tmp_path_factory.mktemp("cos-stack"), services=("cos",))
    stack.start_services()
    yield stack
    stack.stop()


@pytest.fixture
def settings(cos_stack: Any) -> CosSettings:
    if not _is_up(cos_stack):
        cos_stack.start_cos()
    env = cos_stack.cos_endpoint.env()
    return CosSettings(
        cos_region=env["COS_REGION"],
        cos_bucket=env["COS_BUCKET"],
        cos_secret_id=SecretStr(env["COS_SECRET_ID"]),
        cos_secret_key=SecretStr(env["COS_SECRET_KEY"]),
        cos_endpoint_url=env["COS_ENDPOINT_URL"],
    )


@pytest.fixture
def store(settings: CosSettings) -> CosObjectStore:
    return CosObjectStore.from_settings(settings)


def _is_up(stack: Any) -> bool:
    return bool(stack.pids.get("cos"))


def _drain(stream: Any) -> None:
    while stream.read(MiB):
        continue


def _secret_key(settings: CosSettings) -> str:
    return settings.cos_secret_key.get_secret_value()


def test_put_get_head_delete_round_trip(store: CosObjectStore) -> None:
    etag = store.put_bytes(
        "batches/t1/0001.json",
        b'{"rows": []}',
        content_type="application/json",
        metadata={"tenant": "t1", "Batch-Id": "0001"},
    )

    assert etag == hashlib.md5(b'{"rows": []}', usedforsecurity=False).hexdigest()
    assert store.get_bytes("batches/t1/0001.json") == b'{"rows": []}'
    assert store.head("batches/t1/0001.json") == ObjectInfo(
        key="batches/t1/0001.json",
        size=12,
        etag=etag,
        content_type="application/json",
        metadata={"tenant": "t1", "batch-id": "0001"},
    )

    store.delete("batches/t1/0001.json")
    assert store.head("batches/t1/0001.json") is None
    with pytest.raises(ObjectNotFoundError):
        store.get_bytes("batches/t1/0001.json")


def test_put_replaces_an_existing_object(store: CosObjectStore) -> None:
    store.put_bytes("replace/me", b"first")
    store.put_bytes("replace/me", b"second")
    assert store.get_bytes("replace/me") == b"second"
    info = store.head("replace/me")
    assert info is not None
    assert info.content_type == "application/octet-stream"
    assert info.metadata == {}


def test_non_ascii_keys_round_trip(store: CosObjectStore) -> None:
    key = "uploads/租户 1/报表 (final).csv"
    store.put_bytes(key, "名称,数量\n".encode(), content_type="text/csv")
    assert store.get_bytes(key) == "名称,数量\n".encode()
    store.delete(key)


def test_twenty_megabyte_object_streams_in_bounded_reads(store: CosObjectStore) -> None:
    block = hashlib.sha256(b"seed").digest() * (MiB // 32)
    data = block * 20
    expected = hashlib.sha256(data).hexdigest()
    store.put_bytes("big/20mb.bin", data)
    del data, block

    digest = hashlib.sha256()
    sizes = []
    tracemalloc.start()
    try:
        with store.open_stream("big/20mb.bin") as stream:
            while chunk := stream.read(MiB):
                sizes.append(len(chunk))
                digest.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert digest.hexdigest() == expected
    assert sum(sizes) == 20 * MiB
    assert max(sizes) <= MiB
    assert peak < 8 * MiB
    store.delete("big/20mb.bin")


def test_presigned_put_lets_a_client_upload_without_keys(store: CosObjectStore) -> None:
    url = store.presign_put("uploads/direct.csv", expires_in=300, content_type="text/csv")
    assert url.startswith("http://127.0.0.1:")
    assert "q-signature=" in url

    response = requests.put(
        url, data=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"}, timeout=5
    )

    assert response.status_code == 200
    assert store.get_bytes("uploads/direct.csv") == b"a,b\n1,2\n"
    info = store.head("uploads/direct.csv")
    assert info is not None
    assert info.content_type == "text/csv"


def test_presigned_put_for_one_content_type_refuses_another(store: CosObjectStore) -> None:
    url = store.presign_put("uploads/typed.csv", expires_in=300, content_type="text/csv")
    response = requests.put(url, data=b"x", headers={"Content-Type": "text/html"}, timeout=5)
    assert response.status_code == 403
    assert store.head("uploads/typed.csv") is None


def test_presigned_get_downloads_the_object(store: CosObjectStore) -> None:
    store.put_bytes("reports/r.txt", b"report body", content_type="text/plain")
    response = requests.get(store.presign_get("reports/r.txt", expires_in=60), timeout=5)
    assert response.status_code == 200
    assert response.content == b"report body"


def test_missing_key_is_object_not_found(store: CosObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError, match="no/such/key"):
        store.get_bytes("no/such/key")
    with pytest.raises(ObjectNotFoundError):
        store.open_stream("no/such/key")
    assert store.head("no/such/key") is None
    store.delete("no/such/key")


def test_wrong_secret_key_is_a_storage_error_without_the_key(settings: CosSettings) -> None:
    wrong = CosSettings(
        cos_region=settings.cos_region,
        cos_bucket=settings.cos_bucket,
        cos_secret_id=settings.cos_secret_id,
        cos_secret_key=SecretStr("wrong-secret-key-0123456789"),
        cos_endpoint_url=settings.cos_endpoint_url,
    )
    with pytest.raises(StorageError) as caught:
        CosObjectStore.from_settings(wrong).put_bytes("denied", b"x")
    assert not isinstance(caught.value, StorageUnavailableError)
    assert "status=403" in str(caught.value)
    assert "wrong-secret-key-0123456789" not in str(caught.value)
    assert _secret_key(settings) not in str(caught.value)


def test_non_ascii_metadata_is_rejected_before_sending(store: CosObjectStore) -> None:
    with pytest.raises(StorageError, match="metadata"):
        store.put_bytes("meta/bad", b"x", metadata={"filename": "报表.csv"})


def test_factory_reuses_one_store_per_settings(settings: CosSettings) -> None:
    clear_object_stores()
    first = object_store(settings)
    assert object_store(CosSettings(**settings.model_dump())) is first
    other = CosSettings(**{**settings.model_dump(), "cos_bucket": "other-1250000000"})
    assert object_store(other) is not first
    clear_object_stores()


def test_stopped_server_is_storage_unavailable_and_hides_the_key(
    cos_stack: Any, store: CosObjectStore, settings: CosSettings
) -> None:
    store.put_bytes("outage/before", b"kept")
    cos_stack.stop_cos()
    try:
        errors = []
        for call in (
            lambda: store.put_bytes("outage/during", b"x"),
            lambda: store.get_bytes("outage/before"),
            lambda: store.head("outage/before"),
            lambda: store.delete("outage/before"),
        ):
            with pytest.raises(StorageUnavailableError) as caught:
                call()
            errors.append(caught.value)
    finally:
        cos_stack.start_cos()

    for error in errors:
        assert _secret_key(settings) not in str(error)
        assert error.__cause__ is None
        assert error.__suppress_context__
    assert store.get_bytes("outage/before") == b"kept"


def test_interrupted_stream_is_storage_unavailable(
    cos_stack: Any, store: CosObjectStore, settings: CosSettings
) -> None:
    store.put_bytes("outage/stream.bin", b"\0" * (8 * MiB))
    stream = store.open_stream("outage/stream.bin")
    try:
        assert len(stream.read(64 * 1024)) == 64 * 1024
        cos_stack.stop_cos()
        with pytest.raises(StorageUnavailableError) as caught:
            _drain(stream)
        assert _secret_key(settings) not in str(caught.value)
    finally:
        stream.close()
        cos_stack.start_cos()
