"""The COS shim's protocol pieces, checked against what cos-python-sdk-v5 really sends."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import requests
from qcloud_cos import CosConfig
from qcloud_cos.cos_auth import CosS3Auth

from local_emulator.stack.cos import (
    CosCredentials,
    CosRequestError,
    ObjectMirror,
    StoredObject,
    parse_authorization,
    route_request,
    translate_copy_source,
)
from local_emulator.stack.endpoints import CosEndpoint, StackEndpoints, redact_url

SECRET_ID = "AKIDtestsecretid000000000000000000000"
SECRET_KEY = "test-secret-key-0123456789abcdefgh"
BUCKET = "hybrid-local-1250000000"
VHOST = f"{BUCKET}.cos.ap-guangzhou.myqcloud.com"
CREDENTIALS = CosCredentials(SECRET_ID, SECRET_KEY)


def sdk_signed(
    method: str,
    key: str,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    secret_key: str = SECRET_KEY,
) -> requests.PreparedRequest:
    """A request signed by the SDK's own CosS3Auth, as CosS3Client would send it."""
    conf = CosConfig(Region="ap-guangzhou", SecretId=SECRET_ID, SecretKey=secret_key)
    request = requests.Request(
        method,
        f"http://127.0.0.1:9000/{key}",
        params=params or {},
        headers={"Host": VHOST, **(headers or {})},
        data=body,
    ).prepare()
    return CosS3Auth(conf, key, params or {})(request)


def verify(request: requests.PreparedRequest, *, now: float | None = None) -> None:
    url = urlsplit(request.url or "")
    headers = {name.lower(): str(value) for name, value in request.headers.items()}
    route = route_request(VHOST, url.path, lambda: [BUCKET], BUCKET)
    CREDENTIALS.verify_request(
        parse_authorization(headers["authorization"]),
        method=request.method or "GET",
        paths=route.sign_paths,
        query=parse_qsl(url.query, keep_blank_values=True),
        headers=headers,
        hosts=[headers["host"]],
        now=time.time() if now is None else now,
    )


@pytest.mark.parametrize(
    ("method", "key", "params", "headers", "body"),
    [
        ("PUT", "raw/batch-1.json", None, {"Content-Type": "application/json"}, b"{}"),
        ("GET", "dir/naïve file+plus%.txt", None, None, None),
        ("PUT", "big.bin", {"partNumber": "3", "uploadId": "abc/def=="}, None, b"x" * 10),
        ("POST", "big.bin", {"uploads": ""}, {"x-cos-meta-owner": "tenant a"}, None),
        ("DELETE", "a/b/c", None, None, None),
    ],
)
def test_sdk_signed_requests_verify(
    method: str,
    key: str,
    params: dict[str, str] | None,
    headers: dict[str, str] | None,
    body: bytes | None,
) -> None:
    verify(sdk_signed(method, key, params=params, headers=headers, body=body))


def test_a_request_signed_with_another_secret_key_does_not_match() -> None:
    request = sdk_signed("PUT", "k.txt", body=b"data", secret_key="not-the-key")
    with pytest.raises(CosRequestError) as err:
        verify(request)
    assert (err.value.status, err.value.code) == (403, "SignatureDoesNotMatch")


def test_a_tampered_signed_header_does_not_match() -> None:
    request = sdk_signed("PUT", "k.txt", headers={"Content-Type": "text/plain"}, body=b"data")
    request.headers["Content-Type"] = "text/html"
    with pytest.raises(CosRequestError, match="does not match"):
        verify(request)


def test_a_request_outside_its_sign_time_is_refused_as_expired() -> None:
    request = sdk_signed("GET", "k.txt")
    with pytest.raises(CosRequestError, match="expired") as err:
        verify(request, now=time.time() + 20_000)
    assert err.value.code == "AccessDenied"


def test_an_unknown_secret_id_is_refused() -> None:
    request = sdk_signed("GET", "k.txt")
    fields = parse_authorization(request.headers["Authorization"])
    fields["q-ak"] = "AKIDsomeoneelse"
    with pytest.raises(CosRequestError) as err:
        CREDENTIALS.verify_request(
            fields,
            method="GET",
            paths=["/k.txt"],
            query=[],
            headers={"host": VHOST},
            hosts=[VHOST],
            now=time.time(),
        )
    assert err.value.code == "InvalidAccessKeyId"


def test_presigned_url_in_ip_mode_verifies_with_the_port_in_the_host_header() -> None:
    from qcloud_cos import CosS3Client

    client = CosS3Client(
        CosConfig(
            Region="ap-guangzhou",
            SecretId=SECRET_ID,
            SecretKey=SECRET_KEY,
            Scheme="http",
            IP="127.0.0.1",
            Port=9000,
        )
    )
    url = urlsplit(client.get_presigned_url(Bucket=BUCKET, Key="up/a b.csv", Method="PUT"))
    assert url.path == "/up/a%20b.csv"
    query = parse_qsl(url.query, keep_blank_values=True)
    fields = {name: value for name, value in query if name.startswith("q-")}
    route = route_request("127.0.0.1:9000", url.path, lambda: [BUCKET], BUCKET)
    assert (route.bucket, route.key, route.style) == (BUCKET, "up/a b.csv", "default-bucket")
    CREDENTIALS.verify_request(
        fields,
        method="PUT",
        paths=route.sign_paths,
        query=[(n, v) for n, v in query if not n.startswith("q-")],
        headers={"host": "127.0.0.1:9000"},
        hosts=["127.0.0.1:9000", "127.0.0.1"],
        now=time.time(),
    )
    with pytest.raises(CosRequestError):
        CREDENTIALS.verify_request(
            fields,
            method="PUT",
            paths=["/up/other.csv"],
            query=[],
            headers={"host": "127.0.0.1:9000"},
            hosts=["127.0.0.1:9000", "127.0.0.1"],
            now=time.time(),
        )


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        (VHOST, "/a/b.txt", (BUCKET, "a/b.txt", "virtual-host")),
        (
            "other-1250000000.cos.ap-guangzhou.myqcloud.com:8080",
            "/",
            ("other-1250000000", "", "virtual-host"),
        ),
        ("127.0.0.1:9000", f"/{BUCKET}/a/b.txt", (BUCKET, "a/b.txt", "path")),
        ("127.0.0.1:9000", "/not-a-bucket/a.txt", (BUCKET, "not-a-bucket/a.txt", "default-bucket")),
        ("localhost", "/", (None, "", "service")),
        ("service.cos.myqcloud.com", "/", (None, "", "service")),
    ],
)
def test_requests_are_routed_to_the_right_bucket(
    host: str, path: str, expected: tuple[str | None, str, str]
) -> None:
    route = route_request(host, path, lambda: [BUCKET, "other-1250000000"], BUCKET)
    assert (route.bucket, route.key, route.style) == expected


def test_path_style_requests_may_sign_the_bucket_or_only_the_key() -> None:
    route = route_request("127.0.0.1", f"/{BUCKET}/x%20y", lambda: [BUCKET], BUCKET)
    assert route.sign_paths == (f"/{BUCKET}/x y", "/x y")


def test_cos_copy_sources_become_s3_copy_sources() -> None:
    assert translate_copy_source(f"{VHOST}/dir/a%20b.txt") == f"{BUCKET}/dir/a%20b.txt"
    assert translate_copy_source(f"/{BUCKET}/k?versionId=1") == f"{BUCKET}/k?versionId=1"


def stored(key: str, data: bytes = b"payload") -> StoredObject:
    return StoredObject(
        key=key,
        data=data,
        etag="e" * 32,
        content_type="text/plain",
        metadata={"Content-Type": "text/plain", "x-amz-meta-a": "1"},
        last_modified="2026-01-01T00:00:00",
    )


def test_mirror_keeps_awkward_keys_apart_and_loads_them_back(tmp_path: Path) -> None:
    mirror = ObjectMirror(tmp_path)
    keys = ["a", "a/b", "dir/", "../escape", ".cos-hashed/x", "x.cosmeta.json", "deep/n/e/s/t"]
    for key in keys:
        mirror.write(BUCKET, stored(key, key.encode()))
    assert (tmp_path / BUCKET / "deep/n/e/s/t").read_bytes() == b"deep/n/e/s/t"
    assert not (tmp_path / "escape").exists()
    loaded = {obj.key: obj.data for obj in mirror.objects(BUCKET)}
    assert loaded == {key: key.encode() for key in keys}

    for key in keys:
        mirror.remove(BUCKET, key)
    assert list(mirror.objects(BUCKET)) == []
    assert not [path for path in (tmp_path / BUCKET).rglob("*") if path.is_file()]
    assert not (tmp_path / BUCKET / "deep").exists()


def test_mirror_overwrite_replaces_the_previous_copy(tmp_path: Path) -> None:
    mirror = ObjectMirror(tmp_path)
    mirror.write(BUCKET, stored("k", b"one"))
    mirror.write(BUCKET, stored("k", b"two"))
    (obj,) = mirror.objects(BUCKET)
    assert (obj.data, obj.etag, obj.metadata["x-amz-meta-a"]) == (b"two", "e" * 32, "1")


def test_endpoints_env_has_exactly_the_function_variables_and_repr_hides_secrets() -> None:
    cos = CosEndpoint("http", "127.0.0.1", 9000, secret_id="AKIDx", secret_key="cos-key-secret")
    endpoints = StackEndpoints(
        database_url="postgresql://postgres:pg-secret@127.0.0.1:5432/hybrid",
        redis_url="redis://:redis-secret@127.0.0.1:6379/0",
        cos=cos,
    )
    env = endpoints.env()
    assert set(env) == {
        "DATABASE_URL",
        "REDIS_URL",
        "COS_REGION",
        "COS_BUCKET",
        "COS_SECRET_ID",
        "COS_SECRET_KEY",
        "COS_ENDPOINT_URL",
    }
    assert env["COS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert env["COS_BUCKET"] == "hybrid-local-1250000000"
    shown = repr(endpoints) + str(endpoints) + repr(cos) + str(endpoints.describe())
    for secret in ("pg-secret", "redis-secret", "cos-key-secret"):
        assert secret not in shown
    assert redact_url(env["DATABASE_URL"]) == "postgresql://postgres:***@127.0.0.1:5432/hybrid"


def test_external_cos_needs_its_credentials() -> None:
    with pytest.raises(ValueError, match="COS_SECRET_KEY"):
        CosEndpoint.from_env({"COS_ENDPOINT_URL": "http://127.0.0.1:9", "COS_SECRET_ID": "x"})
    cos = CosEndpoint.from_env(
        {"COS_ENDPOINT_URL": "https://cos.example", "COS_SECRET_ID": "i", "COS_SECRET_KEY": "k"}
    )
    assert (cos.port, cos.bucket, unquote(cos.endpoint_url)) == (
        443,
        "hybrid-local-1250000000",
        "https://cos.example:443",
    )


def test_presigned_put_with_a_form_content_type_stores_the_bytes(tmp_path) -> None:
    """urllib sends `application/x-www-form-urlencoded` for any data: COS stores the body as is."""
    from urllib import request

    from hybrid.storage.cos import CosObjectStore
    from local_emulator.stack import LocalStack

    stack = LocalStack(tmp_path, services=("cos",))
    stack.start_services()
    try:
        cos = stack.cos_endpoint
        store = CosObjectStore(
            region=cos.region,
            bucket=cos.bucket,
            secret_id=cos.secret_id,
            secret_key=cos.secret_key,
            endpoint_url=cos.endpoint_url,
        )
        url = store.presign_put("uploads/form.bin", expires_in=600)
        put = request.Request(url, data=b"a=1&b=2 raw bytes", method="PUT")
        with request.urlopen(put, timeout=30) as response:
            assert response.status == 200
        assert store.get_bytes("uploads/form.bin") == b"a=1&b=2 raw bytes"
    finally:
        stack.stop()
