"""admin-api through the emulator's HTTP gateway, as a client sees it: real HTTP, real
serverless.yml, real stack, the function in its own worker process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from local_emulator.emulator import Emulator
from local_emulator.local_env import local_secrets

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    data_dir = tmp_path_factory.mktemp("emulator")
    external = {k for k in os.environ if k.startswith(("DATABASE_", "REDIS_", "COS_"))}
    assert not external, "this test runs the embedded stack"
    with Emulator(ROOT / "serverless.yml", data_dir, retry_delays=(0.1, 0.1)) as running:
        yield running


def _operator(emulator: Emulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {local_secrets(emulator.data_dir)['OPERATOR_KEY']}"}


def test_no_credentials_is_a_401_problem_with_request_id(emulator: Emulator) -> None:
    response = requests.get(f"{emulator.url}/api/v1/admin/tenants", timeout=30)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["X-Request-Id"] == response.json()["request_id"]


def test_operator_creates_tenant_and_key_over_http(emulator: Emulator) -> None:
    base = f"{emulator.url}/api/v1/admin"
    tenant = requests.post(
        f"{base}/tenants", json={"name": "Over HTTP"}, headers=_operator(emulator), timeout=30
    )
    assert tenant.status_code == 201, tenant.text
    key = requests.post(
        f"{base}/tenants/{tenant.json()['id']}/api-keys",
        json={"name": "k", "scopes": ["admin"]},
        headers=_operator(emulator),
        timeout=30,
    )
    assert key.status_code == 201
    own = requests.get(
        f"{base}/tenants/{tenant.json()['id']}",
        headers={"Authorization": f"Bearer {key.json()['key']}"},
        timeout=30,
    )
    assert own.status_code == 200
    assert own.json()["name"] == "Over HTTP"


def test_body_over_6_mb_is_refused_before_the_function(emulator: Emulator) -> None:
    response = requests.post(
        f"{emulator.url}/api/v1/admin/tenants",
        data=b"x" * (6 * 1024 * 1024 + 1),
        headers={**_operator(emulator), "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413


def test_unknown_path_is_404(emulator: Emulator) -> None:
    assert requests.get(f"{emulator.url}/nothing/here", timeout=30).status_code == 404
