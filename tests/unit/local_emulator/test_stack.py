"""The embedded stack with real servers: PostgreSQL, Redis and the COS emulator."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pg8000.dbapi
import pg8000.native
import pytest
import redis
import requests
from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosServiceError
from redis.backoff import NoBackoff
from redis.retry import Retry

from local_emulator.stack import LocalStack, StackEndpoints, StackError, resolve_stack
from local_emulator.stack._process import pid_alive

PROJECT_ROOT = Path(__file__).resolve().parents[3]


class NotifyReceiver:
    """A loopback HTTP server that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                event = json.loads(self.rfile.read(length))
                with receiver._cond:
                    receiver.events.append(event)
                    receiver._cond.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/cos-events"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, key: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if event["key"] == key:
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no notification for {key!r}: {self.events}")
                self._cond.wait(remaining)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def assert_all_gone(pids: dict[str, int | None]) -> None:
    for name, pid in pids.items():
        assert pid is not None
        assert not pid_alive(pid), f"{name} pid {pid} still running"


@pytest.fixture(scope="module")
def receiver() -> Iterator[NotifyReceiver]:
    recv = NotifyReceiver()
    yield recv
    recv.close()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, receiver: NotifyReceiver
) -> Iterator[LocalStack]:
    local = LocalStack(tmp_path_factory.mktemp("stack"), cos_notify_url=receiver.url)
    local.start()
    pids = dict(local.pids)
    yield local
    local.stop()
    assert_all_gone(pids)


@pytest.fixture(scope="module")
def endpoints(stack: LocalStack) -> StackEndpoints:
    return stack.endpoints


@pytest.fixture(scope="module")
def cos(endpoints: StackEndpoints) -> CosS3Client:
    return CosS3Client(CosConfig(**endpoints.cos.sdk_config_kwargs()))


def pg_connect(url: str, **overrides: Any) -> pg8000.native.Connection:
    parts = urlsplit(url)
    params: dict[str, Any] = {
        "user": parts.username,
        "password": parts.password,
        "host": parts.hostname,
        "port": parts.port,
        "database": parts.path.lstrip("/"),
        "timeout": 10,
    }
    params.update(overrides)
    return pg8000.native.Connection(**params)


# --- PostgreSQL and Redis -------------------------------------------------------------------


def test_postgres_accepts_its_password_over_tcp_and_refuses_a_wrong_one(
    endpoints: StackEndpoints,
) -> None:
    conn = pg_connect(endpoints.database_url)
    try:
        assert conn.run("SELECT current_database(), inet_server_addr()::text") == [
            ["hybrid", "127.0.0.1/32"]
        ]
    finally:
        conn.close()
    with pytest.raises(pg8000.dbapi.DatabaseError, match="password authentication failed"):
        pg_connect(endpoints.database_url, password="wrong")


def test_redis_requires_its_password(endpoints: StackEndpoints) -> None:
    client = redis.Redis.from_url(endpoints.redis_url)
    assert client.ping() is True
    client.close()
    parts = urlsplit(endpoints.redis_url)
    anonymous = redis.Redis(host=parts.hostname, port=parts.port, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    anonymous.close()


def test_passwords_are_generated_once_and_kept_private(stack: LocalStack) -> None:
    secrets_dir = stack.data_dir / "secrets"
    assert secrets_dir.stat().st_mode & 0o777 == 0o700
    for path in secrets_dir.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
    logs = "".join(path.read_text() for path in (stack.data_dir / "logs").iterdir())
    for path in secrets_dir.iterdir():
        assert path.read_text().strip() not in logs


def test_postgres_can_be_taken_down_and_brought_back_on_the_same_port(
    stack: LocalStack, endpoints: StackEndpoints
) -> None:
    conn = pg_connect(endpoints.database_url)
    conn.run("CREATE TABLE IF NOT EXISTS outage (v int)")
    conn.run("INSERT INTO outage VALUES (1)")
    conn.close()
    port = stack.ports["postgres"]
    stack.stop_postgres()
    with pytest.raises((pg8000.dbapi.InterfaceError, OSError)):
        pg_connect(endpoints.database_url)
    stack.start_postgres()
    assert stack.ports["postgres"] == port
    conn = pg_connect(stack.database_url)
    assert conn.run("SELECT count(*) FROM outage") == [[1]]
    conn.close()
    stack.restart_postgres()
    assert stack.database_url == endpoints.database_url


def test_redis_can_be_taken_down_and_brought_back_with_its_data(
    stack: LocalStack, endpoints: StackEndpoints
) -> None:
    client = redis.Redis.from_url(endpoints.redis_url)
    client.set("outage-key", "kept")
    client.close()
    stack.stop_redis()
    down = redis.Redis.from_url(endpoints.redis_url, socket_connect_timeout=1)
    with pytest.raises(redis.ConnectionError):
        down.ping()
    down.close()
    stack.start_redis()
    client = redis.Redis.from_url(stack.redis_url)
    assert client.get("outage-key") == b"kept"
    client.close()


def test_postgres_recovers_after_being_killed(stack: LocalStack) -> None:
    pid = stack.pids["postgres"]
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    stack.stop_postgres()
    stack.start_postgres()
    conn = pg_connect(stack.database_url)
    assert conn.run("SELECT count(*) FROM outage") == [[1]]
    conn.close()


def test_a_second_stack_on_the_same_data_dir_is_refused(stack: LocalStack) -> None:
    with pytest.raises(StackError, match="another LocalStack"):
        LocalStack(stack.data_dir).start()


# --- COS ------------------------------------------------------------------------------------


def test_cos_sdk_object_round_trip(cos: CosS3Client, endpoints: StackEndpoints) -> None:
    bucket = endpoints.cos.bucket
    key = "raw/tenant a/批次 1.json"
    put = cos.put_object(
        Bucket=bucket,
        Key=key,
        Body=b'{"n": 1}',
        ContentType="application/json",
        Metadata={"x-cos-meta-tenant": "a"},
    )
    etag = md5_hex(b'{"n": 1}')
    assert put["ETag"] == f'"{etag}"'
    assert put["x-cos-request-id"]

    got = cos.get_object(Bucket=bucket, Key=key)
    assert got["Body"].get_raw_stream().read() == b'{"n": 1}'
    assert got["Content-Type"] == "application/json"
    assert got["x-cos-meta-tenant"] == "a"

    head = cos.head_object(Bucket=bucket, Key=key)
    assert head["Content-Length"] == "8"

    listed = cos.list_objects(Bucket=bucket, Prefix="raw/tenant a/")
    assert [item["Key"] for item in listed["Contents"]] == [key]

    cos.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(CosServiceError) as err:
        cos.head_object(Bucket=bucket, Key=key)
    assert err.value.get_status_code() == 404
    with pytest.raises(CosServiceError) as err:
        cos.get_object(Bucket=bucket, Key=key)
    assert err.value.get_error_code() == "NoSuchKey"


def test_cos_multipart_upload_file_of_12_mb(
    cos: CosS3Client, endpoints: StackEndpoints, receiver: NotifyReceiver, tmp_path: Path
) -> None:
    data = os.urandom(12 * 1024 * 1024 + 17)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    cos.upload_file(Bucket=endpoints.cos.bucket, Key="uploads/big.bin", LocalFilePath=str(path))

    body = cos.get_object(Bucket=endpoints.cos.bucket, Key="uploads/big.bin")["Body"]
    assert body.get_raw_stream().read() == data
    event = receiver.wait_for("uploads/big.bin")
    assert event["event_name"] == "cos:ObjectCreated:CompleteMultipartUpload"
    assert event["size"] == len(data)
    assert event["etag"].endswith("-13")


def test_cos_refuses_a_wrong_secret_key_with_403(endpoints: StackEndpoints) -> None:
    config = {**endpoints.cos.sdk_config_kwargs(), "SecretKey": "not-the-secret-key"}
    client = CosS3Client(CosConfig(**config))
    with pytest.raises(CosServiceError) as err:
        client.put_object(Bucket=endpoints.cos.bucket, Key="nope.txt", Body=b"x")
    assert err.value.get_status_code() == 403
    assert err.value.get_error_code() == "SignatureDoesNotMatch"
    assert err.value.get_request_id()


def test_presigned_put_lands_in_the_default_bucket_and_notifies(
    cos: CosS3Client, endpoints: StackEndpoints, receiver: NotifyReceiver
) -> None:
    bucket = endpoints.cos.bucket
    url = cos.get_presigned_url(Bucket=bucket, Key="inbox/report 1.csv", Method="PUT")
    assert urlsplit(url).path == "/inbox/report%201.csv"

    response = requests.put(url, data=b"a,b\n1,2\n", timeout=10)
    assert response.status_code == 200, response.text
    request_id = response.headers["x-cos-request-id"]

    stored = cos.get_object(Bucket=bucket, Key="inbox/report 1.csv")["Body"]
    assert stored.get_raw_stream().read() == b"a,b\n1,2\n"
    assert receiver.wait_for("inbox/report 1.csv") == {
        "event_name": "cos:ObjectCreated:Put",
        "bucket": bucket,
        "key": "inbox/report 1.csv",
        "size": 8,
        "etag": md5_hex(b"a,b\n1,2\n"),
        "source_ip": "127.0.0.1",
        "request_id": request_id,
    }


def test_expired_and_tampered_presigned_urls_are_refused(
    cos: CosS3Client, endpoints: StackEndpoints
) -> None:
    bucket = endpoints.cos.bucket
    url = cos.get_presigned_url(Bucket=bucket, Key="inbox/ok.txt", Method="PUT", Expired=300)
    parts = urlsplit(url)
    tampered = urlunsplit(parts._replace(path="/inbox/other.txt"))
    response = requests.put(tampered, data=b"x", timeout=10)
    assert response.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in response.text
    assert response.headers["x-cos-request-id"]

    short = cos.get_presigned_url(Bucket=bucket, Key="inbox/late.txt", Method="PUT", Expired=1)
    time.sleep(1.2)
    response = requests.put(short, data=b"x", timeout=10)
    assert response.status_code == 403
    assert "expired" in response.text

    unsigned = requests.put(f"{endpoints.cos.endpoint_url}/inbox/anon.txt", data=b"x", timeout=10)
    assert unsigned.status_code == 403
    with pytest.raises(CosServiceError):
        cos.head_object(Bucket=bucket, Key="inbox/other.txt")


def test_copy_object_is_stored_and_notified_as_copy(
    cos: CosS3Client, endpoints: StackEndpoints, receiver: NotifyReceiver
) -> None:
    bucket = endpoints.cos.bucket
    cos.put_object(Bucket=bucket, Key="copy/src.txt", Body=b"source")
    cos.copy_object(
        Bucket=bucket,
        Key="copy/dst.txt",
        CopySource={"Bucket": bucket, "Key": "copy/src.txt", "Region": endpoints.cos.region},
    )
    assert cos.get_object(Bucket=bucket, Key="copy/dst.txt")["Body"].get_raw_stream().read() == (
        b"source"
    )
    assert receiver.wait_for("copy/dst.txt")["event_name"] == "cos:ObjectCreated:Copy"


def test_browser_post_object_with_a_signed_policy(
    endpoints: StackEndpoints, receiver: NotifyReceiver, cos: CosS3Client
) -> None:
    now = int(time.time())
    key_time = f"{now - 60};{now + 600}"
    expiration = (datetime.now(timezone.utc) + timedelta(minutes=10)).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z"
    )
    policy = json.dumps(
        {
            "expiration": expiration,
            "conditions": [
                {"q-sign-algorithm": "sha1"},
                {"q-ak": endpoints.cos.secret_id},
                {"q-sign-time": key_time},
                {"bucket": endpoints.cos.bucket},
                ["starts-with", "$key", "forms/"],
                ["content-length-range", 1, 1024],
            ],
        }
    )
    sign_key = hmac.new(endpoints.cos.secret_key.encode(), key_time.encode(), hashlib.sha1)
    string_to_sign = hashlib.sha1(policy.encode(), usedforsecurity=False).hexdigest()
    signature = hmac.new(sign_key.hexdigest().encode(), string_to_sign.encode(), hashlib.sha1)
    fields = {
        "key": "forms/${filename}",
        "policy": base64.b64encode(policy.encode()).decode(),
        "q-sign-algorithm": "sha1",
        "q-ak": endpoints.cos.secret_id,
        "q-key-time": key_time,
        "q-signature": signature.hexdigest(),
        "Content-Type": "text/plain",
        "success_action_status": "201",
    }
    url = f"{endpoints.cos.endpoint_url}/"
    host = f"{endpoints.cos.bucket}.cos.{endpoints.cos.region}.myqcloud.com"
    response = requests.post(
        url,
        data=fields,
        files={"file": ("note.txt", b"hello form")},
        headers={"Host": host},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    assert "<Key>forms/note.txt</Key>" in response.text
    event = receiver.wait_for("forms/note.txt")
    assert (event["event_name"], event["size"]) == ("cos:ObjectCreated:Post", 10)
    got = cos.get_object(Bucket=endpoints.cos.bucket, Key="forms/note.txt")
    assert got["Content-Type"] == "text/plain"

    outside = {**fields, "key": "elsewhere/${filename}"}
    refused = requests.post(
        url, data=outside, files={"file": ("n.txt", b"x")}, headers={"Host": host}, timeout=10
    )
    assert refused.status_code == 403


def test_other_buckets_by_host_header_and_by_path(
    cos: CosS3Client, endpoints: StackEndpoints
) -> None:
    cos.create_bucket(Bucket="archive-1250000000")
    cos.put_object(Bucket="archive-1250000000", Key="k.txt", Body=b"in archive")
    url = cos.get_presigned_url(Bucket="archive-1250000000", Key="k.txt", Method="GET")
    parts = urlsplit(url)
    path_style = urlunsplit(parts._replace(path="/archive-1250000000/k.txt"))
    response = requests.get(path_style, timeout=10)
    assert (response.status_code, response.content) == (200, b"in archive")
    default_bucket = cos.list_objects(Bucket=endpoints.cos.bucket, Prefix="k.txt")
    assert "Contents" not in default_bucket


# --- persistence, leftovers, external servers ------------------------------------------------


def test_data_survives_a_restart_of_the_stack_on_the_same_ports(tmp_path: Path) -> None:
    # The notification target is down: uploads must succeed anyway.
    first = LocalStack(tmp_path / "data", cos_notify_url="http://127.0.0.1:9/down")
    endpoints = first.start()
    ports = dict(first.ports)
    conn = pg_connect(endpoints.database_url)
    conn.run("CREATE TABLE kept (v text)")
    conn.run("INSERT INTO kept VALUES ('row')")
    conn.close()
    client = redis.Redis.from_url(endpoints.redis_url)
    client.set("kept", "value")
    client.close()
    cos = CosS3Client(CosConfig(**endpoints.cos.sdk_config_kwargs()))
    cos.put_object(Bucket=endpoints.cos.bucket, Key="kept/a.txt", Body=b"object", ContentType="a/b")
    cos.put_object(Bucket=endpoints.cos.bucket, Key="gone.txt", Body=b"deleted before restart")
    cos.delete_object(Bucket=endpoints.cos.bucket, Key="gone.txt")
    cos_log = tmp_path / "data" / "logs" / "cos.log"
    deadline = time.monotonic() + 10
    while "notify failed" not in cos_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "notify failed" in cos_log.read_text()
    pids = dict(first.pids)
    first.stop()
    assert_all_gone(pids)

    second = LocalStack(tmp_path / "data")
    again = second.start()
    try:
        assert again.env() == endpoints.env()
        assert second.ports == ports
        conn = pg_connect(again.database_url)
        assert conn.run("SELECT v FROM kept") == [["row"]]
        conn.close()
        client = redis.Redis.from_url(again.redis_url)
        assert client.get("kept") == b"value"
        client.close()
        cos = CosS3Client(CosConfig(**again.cos.sdk_config_kwargs()))
        got = cos.get_object(Bucket=again.cos.bucket, Key="kept/a.txt")
        assert got["Body"].get_raw_stream().read() == b"object"
        assert got["Content-Type"] == "a/b"
        with pytest.raises(CosServiceError):
            cos.head_object(Bucket=again.cos.bucket, Key="gone.txt")
    finally:
        pids = dict(second.pids)
        second.stop()
    assert_all_gone(pids)


def test_a_stack_left_running_by_a_killed_process_is_cleaned_up(tmp_path: Path) -> None:
    data_dir = tmp_path / "killed"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from local_emulator.stack import LocalStack\n"
        "stack = LocalStack(Path(sys.argv[1]))\n"
        "stack.start()\n"
        "print(' '.join(str(p) for p in stack.pids.values()), flush=True)\n"
        "time.sleep(600)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(data_dir)], stdout=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    orphans = [int(pid) for pid in proc.stdout.readline().split()]
    assert len(orphans) == 3
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 15
    while any(pid_alive(pid) for pid in orphans) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(pid) for pid in orphans), "the reaper left servers running"

    stack = LocalStack(data_dir)
    try:
        endpoints = stack.start()
        conn = pg_connect(endpoints.database_url)
        assert conn.run("SELECT 1") == [[1]]
        conn.close()
    finally:
        pids = dict(stack.pids)
        stack.stop()
        proc.stdout.close()
    assert_all_gone(pids)


def test_resolve_stack_with_a_database_url_starts_no_postgres(
    tmp_path: Path, endpoints: StackEndpoints
) -> None:
    environ = {"DATABASE_URL": endpoints.database_url}
    resolved, started = resolve_stack(tmp_path / "partial", environ)
    assert started is not None
    try:
        assert resolved.database_url == endpoints.database_url
        assert set(started.pids) == {"redis", "cos"}
        assert not (tmp_path / "partial" / "postgres").exists()
        client = redis.Redis.from_url(resolved.redis_url)
        assert client.ping() is True
        client.close()
    finally:
        pids = dict(started.pids)
        started.stop()
    assert_all_gone(pids)


def test_resolve_stack_with_everything_external_starts_nothing(
    tmp_path: Path, endpoints: StackEndpoints
) -> None:
    resolved, started = resolve_stack(tmp_path / "none", endpoints.env())
    assert started is None
    assert resolved.env() == endpoints.env()
    assert not (tmp_path / "none").exists()
