"""Helpers of the connector's functional tests: a table of fake people (phones, ID numbers,
emails, Chinese names, free text) in a `CustomerDatabase`, connector configs, and a signed
HTTP client for the tunnel."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hybrid.connectors.protocol import ERROR_KEY, TRAILER_KEY, decompress, dumps
from hybrid.masking import find_pii, id_check_char
from hybrid.signing import new_webhook_secret, sign_request

ROOT = Path(__file__).resolve().parents[2]
PEOPLE = 1000
# Rows after this id have a phone number in their free-text note.
NOTE_PII_FROM = 150
SURNAMES = "张王李赵刘陈杨黄"


def phone(i: int) -> str:
    return f"139{i:08d}"


def id_number(i: int) -> str:
    body = f"110105{1950 + i % 50:04d}{1 + i % 12:02d}{1 + i % 28:02d}{i % 1000:03d}"
    return body + id_check_char(body)


def email(i: int) -> str:
    return f"person{i}@corp-mail.cn"


def name(i: int) -> str:
    return SURNAMES[i % len(SURNAMES)] + "小明"


def note(i: int) -> str | None:
    return f"call me on {phone(i + 7)} after six" if i > NOTE_PII_FROM else None


def raw_pii_samples(count: int = PEOPLE) -> list[str]:
    """Every raw PII value of the table, to look for in response bytes."""
    values: list[str] = []
    for i in range(1, count + 1):
        values += [phone(i), id_number(i), email(i), phone(i + 7)]
    return values


def create_people(customer: Any, *, count: int = PEOPLE) -> None:
    """`people` in the customer's database, readable by its ``reader`` role."""
    ids = list(range(1, count + 1))
    with customer.connect() as con:
        con.run(
            "CREATE TABLE people (id int PRIMARY KEY, name text, phone text, id_no text, "
            "email text, note text, city text, updated_at timestamptz NOT NULL)"
        )
        con.run(
            "INSERT INTO people SELECT * FROM unnest("
            "CAST(:ids AS int[]), CAST(:names AS text[]), CAST(:phones AS text[]), "
            "CAST(:idnos AS text[]), CAST(:emails AS text[]), CAST(:notes AS text[]), "
            "CAST(:cities AS text[]), CAST(:times AS timestamptz[]))",
            ids=ids,
            names=[name(i) for i in ids],
            phones=[phone(i) for i in ids],
            idnos=[id_number(i) for i in ids],
            emails=[email(i) for i in ids],
            notes=[note(i) for i in ids],
            cities=["上海" if i % 2 else "Beijing" for i in ids],
            times=["2024-01-01T00:00:00Z" for _ in ids],
        )
        con.run(f"GRANT SELECT ON people TO {customer.role('reader')}")


PEOPLE_MASKING = {
    "people": {
        "columns": {
            "name": "mask_name",
            "phone": "mask_phone",
            "id_no": "mask_id_card",
            "email": "mask_email",
        }
    },
    "*": {"unlisted": "detect"},
}


def connector_config(
    *,
    customer: Any,
    data_dir: Path,
    secret: str,
    transport: str = "tunnel",
    port: int | None = None,
    cloud_url: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The mapping of a config file for the reader role of `customer`."""
    raw: dict[str, Any] = {
        "connector_id": "con_test",
        "secret": secret,
        "transport": transport,
        "data_dir": str(data_dir),
        "pseudonym_key": "00" * 32,
        "log_level": "INFO",
        "chunk_rows": 100,
        "retry_base_s": 0.05,
        "retry_cap_s": 0.5,
        "poll_wait": 1,
        "idle_pause_s": 0.1,
        "sources": {
            "erp": {
                "engine": "postgresql",
                "url": customer.url("reader"),
                "allowed_tables": ["customers", "orders", "people"],
                "statement_timeout_ms": 10_000,
                "max_rows": 5_000,
                "masking": PEOPLE_MASKING,
            }
        },
    }
    if port is not None:
        raw["listen"] = f"127.0.0.1:{port}"
    if cloud_url is not None:
        raw["cloud_url"] = cloud_url
    raw.update(extra)
    return raw


def write_config(path: Path, raw: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(raw), allow_unicode=True), encoding="utf-8")
    return path


def new_secret() -> str:
    return new_webhook_secret()


# --- the tunnel, as the cloud calls it -----------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    wire: bytes
    msg_id: str
    body: bytes = b""
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if TRAILER_KEY not in line and ERROR_KEY not in line]

    @property
    def trailer(self) -> dict[str, Any] | None:
        last = self.lines[-1] if self.lines else {}
        return last.get(TRAILER_KEY)

    @property
    def error(self) -> dict[str, Any] | None:
        last = self.lines[-1] if self.lines else {}
        return last.get(ERROR_KEY)

    @property
    def before_last_line(self) -> bytes:
        """Every decompressed byte before the last line (what body_sha256 covers)."""
        text = self.body.rstrip(b"\n")
        cut = text.rfind(b"\n")
        return text[: cut + 1] if cut >= 0 else b""

    @property
    def body_sha256(self) -> str:
        return hashlib.sha256(self.before_last_line).hexdigest()

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    port: int,
    method: str,
    target: str,
    *,
    secret: str | None,
    body: Any = None,
    raw: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timestamp: int | None = None,
    msg_id: str | None = None,
) -> Response:
    """One request to the tunnel on loopback, signed with `secret` (unsigned when None)."""
    payload = raw if raw is not None else (dumps(body) if body is not None else b"")
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    all_headers: dict[str, str] = {}
    if secret is not None:
        all_headers.update(
            sign_request(
                secret,
                method,
                target,
                payload,
                msg_id=msg_id,
                timestamp=int(time.time()) if timestamp is None else timestamp,
            )
        )
    if payload:
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, target, body=payload or None, headers=all_headers)
        response = connection.getresponse()
        wire_chunks = []
        while True:
            data = response.read1(65536)
            if not data:
                break
            wire_chunks.append(data)
        wire = b"".join(wire_chunks)
        answer = Response(response.status, dict(response.getheaders()), wire, msg_id)
    finally:
        connection.close()
    encoding = answer.headers.get("Content-Encoding", "identity")
    answer.body = decompress(wire, encoding)
    if answer.headers.get("Content-Type") == "application/x-ndjson":
        answer.lines = [json.loads(line) for line in answer.body.splitlines() if line.strip()]
    return answer


def query(port: int, secret: str, request: Mapping[str, Any], **kwargs: Any) -> Response:
    return call(port, "POST", "/v1/query", secret=secret, body=dict(request), **kwargs)


def pii_in(data: bytes) -> list[str]:
    """The PII kinds the detectors find in text."""
    return sorted({span.kind for span in find_pii(data.decode("utf-8", "replace"))})


def raw_values_in(data: bytes, count: int = PEOPLE) -> list[str]:
    text = data.decode("utf-8", "replace")
    return [value for value in raw_pii_samples(count) if value in text]


# --- a connector process --------------------------------------------------------------------------


def start_connector(config_file: Path, *args: str, env: Mapping[str, str] | None = None) -> Any:
    """``python -m connector --config FILE`` from the repository root, its output in files
    next to the config (so a full pipe never blocks it)."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CONNECTOR_") and key != "PYTHONPATH"
    }
    environment.update(env or {})
    log = open(config_file.with_suffix(f".{uuid.uuid4().hex[:6]}.log"), "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "connector", *args, "--config", str(config_file)],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    process.log_path = Path(log.name)  # type: ignore[attr-defined]
    log.close()
    return process


def stop_connector(process: Any, *, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return int(process.wait(timeout=timeout))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
        raise


def wait_for(
    condition: Callable[[], Any], *, timeout: float = 20, interval: float = 0.05, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(interval)


def log_of(process: Any) -> str:
    return Path(process.log_path).read_text(encoding="utf-8", errors="replace")
