"""push-ingest through the emulator: real HTTP, concurrent workers, a real presigned upload
whose COS event the emulator delivers to the function."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from local_emulator.emulator import Emulator
from local_emulator.local_env import local_secrets

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    data_dir = tmp_path_factory.mktemp("push-emulator")
    with Emulator(ROOT / "serverless.yml", data_dir, retry_delays=(0.2, 0.2)) as running:
        yield running


@pytest.fixture(scope="module")
def ingest_key(emulator: Emulator) -> str:
    operator = {"Authorization": f"Bearer {local_secrets(emulator.data_dir)['OPERATOR_KEY']}"}
    base = f"{emulator.url}/api/v1/admin"
    tenant = requests.post(f"{base}/tenants", json={"name": "E2E"}, headers=operator, timeout=30)
    key = requests.post(
        f"{base}/tenants/{tenant.json()['id']}/api-keys",
        json={"name": "ingest", "scopes": ["ingest:write", "status:read"]},
        headers=operator,
        timeout=30,
    )
    return str(key.json()["key"])


def _records(count: int) -> list[dict]:
    return [
        {"key": f"k-{i}", "updated_at": "2026-11-20T08:00:00Z", "data": {"i": i}}
        for i in range(count)
    ]


def test_fifty_concurrent_identical_requests_store_the_batch_once(
    emulator: Emulator, ingest_key: str
) -> None:
    body = {"source": "concurrent", "records": _records(20)}
    headers = {"Authorization": f"Bearer {ingest_key}", "Idempotency-Key": "fifty"}

    def send(_: int) -> requests.Response:
        return requests.post(
            f"{emulator.url}/api/v1/sync/push/batch", json=body, headers=headers, timeout=60
        )

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(send, range(50)))
    statuses = sorted({r.status_code for r in responses})
    assert set(statuses) <= {200, 409}, [r.text for r in responses if r.status_code >= 500][:1]
    ok = [r for r in responses if r.status_code == 200]
    assert {r.json()["receipt_id"] for r in ok} == {ok[0].json()["receipt_id"]}
    assert sum(r.json()["inserted"] for r in ok if not r.headers.get("Idempotent-Replayed")) == 20
    fresh = [r for r in ok if not r.headers.get("Idempotent-Replayed")]
    assert len(fresh) == 1
    for conflict in (r for r in responses if r.status_code == 409):
        assert int(conflict.headers["Retry-After"]) >= 1


def test_presigned_upload_is_ingested_by_the_cos_trigger(
    emulator: Emulator, ingest_key: str
) -> None:
    auth = {"Authorization": f"Bearer {ingest_key}"}
    content = gzip.compress("\n".join(json.dumps(r) for r in _records(300)).encode())
    created = requests.post(
        f"{emulator.url}/api/v1/sync/push/file",
        headers=auth,
        timeout=30,
        json={
            "source": "files",
            "filename": "big.ndjson.gz",
            "format": "ndjson",
            "compression": "gzip",
        },
    )
    assert created.status_code == 201, created.text
    assert requests.put(created.json()["upload_url"], data=content, timeout=30).status_code == 200
    status_url = f"{emulator.url}/api/v1/sync/push/file/{created.json()['upload_id']}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = requests.get(status_url, headers=auth, timeout=30).json()
        if status["status"] in {"done", "failed"}:
            break
        time.sleep(0.3)
    assert status["status"] == "done", status
    assert status["accepted"] == 300
