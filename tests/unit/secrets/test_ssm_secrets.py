"""SSM secret references against a loopback server that plays the SSM API and checks what the SDK
sends: action, version, JSON body, session token and the TC3-HMAC-SHA256 signature (computed
here independently, as the "Signature v3" page of the TencentCloud API docs describes it)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from hybrid import secrets, tencent
from hybrid.config import FunctionSettings, clear_settings_cache, load_settings
from hybrid.log import redact_text
from tests.support.tencent_api import FakeTencentApi

SECRET_ID = "AKIDtestroleid000000000001"
SECRET_KEY = "test-role-secret-key-0123456789abcdef"
SESSION_TOKEN = "test-session-token-Zm9vYmFy-0123456789"
REGION = "ap-shanghai"


class FakeSsm(FakeTencentApi):
    """A loopback SSM endpoint holding `secrets` by (name, version)."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        super().__init__(
            service="ssm",
            action="GetSecretValue",
            version="2019-09-23",
            region=REGION,
            secret_id=SECRET_ID,
            secret_key=SECRET_KEY,
            session_token=SESSION_TOKEN,
            responder=self._lookup,
        )

    def _lookup(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        found = self.secrets.get((params["SecretName"], params["VersionId"]))
        if found is None:
            error = {
                "Code": "ResourceNotFound.SecretNotExist",
                "Message": "The secret does not exist or has been deleted.",
            }
            return 200, {"Error": error}
        return 200, {
            "SecretName": params["SecretName"],
            "VersionId": params["VersionId"],
            "SecretString": found.get("string", ""),
            "SecretBinary": found.get("binary", ""),
        }


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSsm]:
    fake = FakeSsm()
    monkeypatch.setenv("TENCENTCLOUD_SECRETID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", SECRET_KEY)
    monkeypatch.setenv("TENCENTCLOUD_SESSIONTOKEN", SESSION_TOKEN)
    monkeypatch.setenv("TENCENTCLOUD_REGION", REGION)
    monkeypatch.setenv("TENCENTCLOUD_SSM_ENDPOINT", fake.endpoint)
    secrets.clear_cache()
    clear_settings_cache()
    yield fake
    secrets.clear_cache()
    clear_settings_cache()
    fake.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reference_resolves_through_a_signed_get_secret_value_call(ssm: FakeSsm) -> None:
    ssm.secrets[("wecom-robot", "v2")] = {"string": "robot-key-123456"}

    assert secrets.resolve("ssm://wecom-robot?version=v2") == "robot-key-123456"

    assert ssm.problems == []
    assert len(ssm.requests) == 1
    assert ssm.requests[0]["params"] == {"SecretName": "wecom-robot", "VersionId": "v2"}


def test_request_signed_with_another_key_is_refused_by_the_fake_ssm(
    ssm: FakeSsm, monkeypatch: pytest.MonkeyPatch
) -> None:
    ssm.secrets[("wecom-robot", "v2")] = {"string": "robot-key-123456"}
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", "not-the-key-the-server-knows")

    with pytest.raises(secrets.SecretError) as caught:
        secrets.resolve("ssm://wecom-robot?version=v2")

    assert caught.value.code == "AuthFailure.SignatureFailure"
    assert ssm.problems == ["signature"]


def test_reference_without_version_asks_for_ssm_current(ssm: FakeSsm) -> None:
    ssm.secrets[("db-password", "SSM_Current")] = {"string": "pg-password-current"}

    assert secrets.resolve("ssm://db-password") == "pg-password-current"
    assert ssm.requests[0]["params"]["VersionId"] == "SSM_Current"


def test_binary_secret_is_base64_decoded(ssm: FakeSsm) -> None:
    encoded = base64.b64encode("二进制-secret-value".encode()).decode()
    ssm.secrets[("signing-key", "v1")] = {"binary": encoded}

    assert secrets.resolve("ssm://signing-key?version=v1") == "二进制-secret-value"


def test_second_read_within_ttl_makes_no_request_and_after_ttl_does(ssm: FakeSsm) -> None:
    ssm.secrets[("api-token", "v1")] = {"string": "first-value-000"}
    clock = Clock()
    resolver = secrets.SecretResolver(ttl_seconds=300, clock=clock)

    assert resolver.resolve("ssm://api-token?version=v1") == "first-value-000"
    clock.now += 299
    assert resolver.resolve("ssm://api-token?version=v1") == "first-value-000"
    assert len(ssm.requests) == 1

    ssm.secrets[("api-token", "v1")] = {"string": "rotated-value-111"}
    clock.now += 2
    assert resolver.resolve("ssm://api-token?version=v1") == "rotated-value-111"
    assert len(ssm.requests) == 2


def test_concurrent_first_reads_make_one_request(ssm: FakeSsm) -> None:
    ssm.secrets[("shared", "v1")] = {"string": "shared-value-0001"}
    resolver = secrets.SecretResolver()
    barrier = threading.Barrier(8)
    results: list[str] = []

    def read() -> None:
        barrier.wait()
        results.append(resolver.resolve("ssm://shared?version=v1"))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert results == ["shared-value-0001"] * 8
    assert len(ssm.requests) == 1


def test_missing_secret_raises_secret_error_naming_only_the_secret(ssm: FakeSsm) -> None:
    with pytest.raises(secrets.SecretError) as caught:
        secrets.resolve("ssm://no-such-secret?version=v9")

    error = caught.value
    assert error.name == "no-such-secret"
    assert error.code == "ResourceNotFound.SecretNotExist"
    assert error.request_id == "ssm-req-1"
    assert "no-such-secret" in str(error)
    for credential in (SECRET_KEY, SESSION_TOKEN):
        assert credential not in str(error)
        assert credential not in repr(error.__cause__)


def test_failed_refresh_serves_stale_value_within_grace_and_logs_it(ssm: FakeSsm) -> None:
    ssm.secrets[("smtp-password", "v1")] = {"string": "stale-but-good-42"}
    clock = Clock()
    resolver = secrets.SecretResolver(ttl_seconds=60, stale_grace_seconds=600, clock=clock)
    assert resolver.resolve("ssm://smtp-password?version=v1") == "stale-but-good-42"

    ssm.responder = lambda params: (500, {"Error": {"Code": "InternalError", "Message": "boom"}})
    clock.now += 61
    with capture_logs() as logs:
        assert resolver.resolve("ssm://smtp-password?version=v1") == "stale-but-good-42"

    assert [entry["event"] for entry in logs] == ["secret refresh failed, serving stale value"]
    assert logs[0]["ssm_name"] == "smtp-password"
    assert "stale-but-good-42" not in json.dumps(logs, default=str)

    clock.now += 600
    with pytest.raises(secrets.SecretError) as caught:
        resolver.resolve("ssm://smtp-password?version=v1")
    assert caught.value.unavailable
    assert "stale-but-good-42" not in str(caught.value)


def test_refresh_that_finds_the_secret_deleted_does_not_serve_stale(ssm: FakeSsm) -> None:
    ssm.secrets[("revoked", "v1")] = {"string": "revoked-value-1"}
    clock = Clock()
    resolver = secrets.SecretResolver(ttl_seconds=60, clock=clock)
    resolver.resolve("ssm://revoked?version=v1")

    del ssm.secrets[("revoked", "v1")]
    clock.now += 61
    with pytest.raises(secrets.SecretError, match="revoked"):
        resolver.resolve("ssm://revoked?version=v1")


def test_unreachable_ssm_is_an_unavailable_secret_error(
    ssm: FakeSsm, monkeypatch: pytest.MonkeyPatch
) -> None:
    ssm.close()
    with pytest.raises(secrets.SecretError) as caught:
        secrets.resolve("ssm://anything?version=v1")
    assert caught.value.unavailable
    assert caught.value.code == "ClientNetworkError"
    assert SECRET_KEY not in str(caught.value)


class WebhookSettings(FunctionSettings):
    webhook_secret: SecretStr
    plain_value: str = "x"


def test_load_settings_resolves_ssm_reference_and_registers_it_for_redaction(
    ssm: FakeSsm, monkeypatch: pytest.MonkeyPatch
) -> None:
    ssm.secrets[("webhook-signing", "v3")] = {"string": "whsec-resolved-value-987"}
    monkeypatch.setenv("WEBHOOK_SECRET", "ssm://webhook-signing?version=v3")

    settings = load_settings(WebhookSettings)

    assert settings.webhook_secret.get_secret_value() == "whsec-resolved-value-987"
    assert "whsec-resolved-value-987" not in redact_text("sent whsec-resolved-value-987 to x")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ssm://name", True),
        ("SSM://name?version=v1", True),
        ("  ssm://name", True),
        ("plain-password", False),
        ("https://ssm.tencentcloudapi.com", False),
        ("", False),
        (None, False),
    ],
)
def test_is_reference_recognises_only_ssm_urls(value: str | None, expected: bool) -> None:
    assert secrets.is_reference(value) is expected


@pytest.mark.parametrize(
    "reference",
    [
        "ssm://",
        "ssm://bad name",
        "ssm://x?version=",
        "ssm://x?ver=v1",
        "ssm://x?version=a&version=b",
    ],
)
def test_malformed_reference_is_rejected_without_calling_ssm(ssm: FakeSsm, reference: str) -> None:
    with pytest.raises(secrets.SecretError, match="malformed"):
        secrets.resolve(reference)
    assert ssm.requests == []


def test_scf_credential_reads_role_variables_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRETID", "AKIDfirst")
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", "first-key-000000")
    monkeypatch.setenv("TENCENTCLOUD_SESSIONTOKEN", "first-token-000000")
    assert tencent.scf_credential().get_credential_info() == (
        "AKIDfirst",
        "first-key-000000",
        "first-token-000000",
    )
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", "second-key-000000")
    assert tencent.scf_credential().secret_key == "second-key-000000"
    assert "second-key-000000" not in redact_text("key second-key-000000")


def test_scf_credential_falls_back_to_sdk_default_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY", "TENCENTCLOUD_SESSIONTOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDlocaldev")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "local-dev-key-000")

    credential = tencent.scf_credential()

    assert credential.secret_id == "AKIDlocaldev"
    assert credential.token is None


def test_region_defaults_to_guangzhou(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENCENTCLOUD_REGION", raising=False)
    assert tencent.region() == "ap-guangzhou"
    monkeypatch.setenv("TENCENTCLOUD_REGION", "ap-beijing")
    assert tencent.region() == "ap-beijing"


def test_sdk_exception_translation_keeps_code_and_request_id_but_not_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
        TencentCloudSDKException,
    )

    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", "leaky-secret-key-xyz")
    with pytest.raises(tencent.TencentCloudError) as caught, tencent.sdk_errors("ssm Demo"):
        raise TencentCloudSDKException(
            "AuthFailure.SignatureFailure", "bad signature for leaky-secret-key-xyz", "req-77"
        )

    error = caught.value
    assert (error.code, error.request_id) == ("AuthFailure.SignatureFailure", "req-77")
    assert "AuthFailure.SignatureFailure" in str(error)
    assert "req-77" in str(error)
    assert "leaky-secret-key-xyz" not in str(error)
    assert not error.unavailable


def test_client_profile_points_the_sdk_at_an_overridden_endpoint() -> None:
    profile = tencent.client_profile("http://127.0.0.1:9999", timeout=3)
    assert (profile.httpProfile.scheme, profile.httpProfile.endpoint) == ("http", "127.0.0.1:9999")
    assert profile.httpProfile.reqTimeout == 3
    assert profile.signMethod == "TC3-HMAC-SHA256"
    default = tencent.client_profile(None)
    assert (default.httpProfile.scheme, default.httpProfile.endpoint) == ("https", None)
