"""The tunnel server against a real PostgreSQL customer database with fake PII: signatures,
masked NDJSON streams, signed trailers, compression, page tokens, the egress scanner, the
guard, health; and one real ``python -m connector`` process stopped by SIGTERM."""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.config import parse_config
from connector.service import QueryService
from connector.tunnel import TunnelServer, serve
from hybrid.connectors.protocol import QueryRequest, trailer_valid
from hybrid.connectors.tunnel import ConnectorQueryError, TunnelClient
from hybrid.signing import verify
from local_emulator.stack._process import free_port
from tests.functional.connector.test_postgres_source import CustomerDatabase
from tests.support.connector import (
    NOTE_PII_FROM,
    PEOPLE,
    call,
    connector_config,
    create_people,
    id_number,
    new_secret,
    phone,
    pii_in,
    query,
    raw_values_in,
    start_connector,
    stop_connector,
    wait_for,
    write_config,
)

PEOPLE_SQL = "SELECT id, name, phone, id_no, email, note, city FROM people ORDER BY id"


@pytest.fixture(scope="module")
def customer(endpoints: Any) -> Iterator[CustomerDatabase]:
    db = CustomerDatabase.create(endpoints.database_url)
    try:
        create_people(db)
        yield db
    finally:
        db.drop()


@pytest.fixture(scope="module")
def secret() -> str:
    return new_secret()


@pytest.fixture(scope="module")
def tunnel(
    customer: CustomerDatabase, secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TunnelServer]:
    raw = connector_config(
        customer=customer,
        data_dir=tmp_path_factory.mktemp("tunnel"),
        secret=secret,
        port=free_port(),
    )
    config = parse_config(raw, {})
    service = QueryService(config)
    service.startup_self_test()
    server = serve(config, service)
    try:
        yield server
    finally:
        server.stop()
        service.close()


def people(max_rows: int | None = None, **extra: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"source": "erp", "sql": PEOPLE_SQL, **extra}
    if max_rows is not None:
        request["max_rows"] = max_rows
    return request


# --- signatures ------------------------------------------------------------------------------


def test_unsigned_forged_stale_and_replayed_requests_are_refused_before_anything_runs(
    tunnel: TunnelServer, secret: str
) -> None:
    before = tunnel.service.stats.snapshot()["queries"]
    unsigned = query(tunnel.port, secret, people(), headers={})
    assert unsigned.status == 200  # the control: signed, it runs

    answers = [
        call(tunnel.port, "POST", "/v1/query", secret=None, body=people()),
        query(tunnel.port, new_secret(), people()),
        query(tunnel.port, secret, people(), timestamp=int(time.time()) - 1000),
        # Signed for another path, or another body than the one sent.
        call(
            tunnel.port,
            "POST",
            "/v1/query",
            secret=secret,
            body=people(),
            headers={"webhook-signature": "v1,AAAA"},
        ),
    ]
    replayed_id = unsigned.msg_id
    answers.append(query(tunnel.port, secret, people(), msg_id=replayed_id))
    for answer in answers:
        assert answer.status == 401, answer.body
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.json()["code"] == "unauthorized"
        assert b"139" not in answer.wire
    assert tunnel.service.stats.snapshot()["queries"] == before + 1


def test_a_body_over_one_mebibyte_is_refused_unread(tunnel: TunnelServer, secret: str) -> None:
    # The answer comes while most of the announced body was never sent.
    with socket.create_connection(("127.0.0.1", tunnel.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5000000\r\n\r\n" + b"{" * 1000
        )
        answer = b""
        while data := sock.recv(65536):
            answer += data
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"code": "body_too_large"' in answer
    # A client that sends it all anyway still reads the answer.
    big = json.dumps({"source": "erp", "sql": "SELECT 1", "pad": "x" * (1024 * 1024)}).encode()
    refused = call(tunnel.port, "POST", "/v1/query", secret=secret, raw=big)
    assert refused.status == 413


# --- streams ---------------------------------------------------------------------------------


def test_query_streams_masked_rows_with_a_trailer_that_verifies(
    tunnel: TunnelServer, secret: str
) -> None:
    answer = query(tunnel.port, secret, people())
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/x-ndjson"
    assert answer.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Encoding" not in answer.headers
    rows, trailer = answer.rows, answer.trailer
    assert trailer is not None
    assert len(rows) == PEOPLE == trailer["row_count"]
    assert trailer["truncated"] is False
    assert trailer["next_page_token"] is None
    assert trailer["columns"] == ["id", "name", "phone", "id_no", "email", "note", "city"]
    assert trailer_valid([secret], answer.msg_id, trailer, answer.body_sha256)
    assert not trailer_valid([new_secret()], answer.msg_id, trailer, answer.body_sha256)

    # No raw PII anywhere in the bytes that left, by the detectors and by value.
    assert pii_in(answer.before_last_line) == []
    assert raw_values_in(answer.wire) == []
    first = rows[0]
    assert first["id"] == 1
    assert first["phone"] == "139****0001"
    assert first["id_no"] == id_number(1)[:6] + "********" + id_number(1)[-4:]
    assert first["email"] == "p***@corp-mail.cn"
    assert first["name"] == "王**"
    assert first["city"] == "上海"
    late = rows[NOTE_PII_FROM + 10]
    assert late["note"] is not None
    assert phone(late["id"] + 7) not in late["note"]
    assert "****" in late["note"]


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_compressed_streams_carry_the_same_rows_and_trailer(
    tunnel: TunnelServer, secret: str, encoding: str
) -> None:
    plain = query(tunnel.port, secret, people())
    packed = query(tunnel.port, secret, people(), headers={"Accept-Encoding": encoding})
    assert packed.status == 200
    assert packed.headers["Content-Encoding"] == encoding
    assert packed.rows == plain.rows
    assert len(packed.wire) < len(plain.wire) / 3
    assert trailer_valid([secret], packed.msg_id, packed.trailer or {}, packed.body_sha256)
    if encoding == "gzip":
        assert gzip.decompress(packed.wire) == packed.body
    assert raw_values_in(packed.body) == []


def test_the_clouds_tunnel_client_accepts_the_stream(tunnel: TunnelServer, secret: str) -> None:
    client = TunnelClient(f"http://127.0.0.1:{tunnel.port}", secret)
    page = client.query(QueryRequest.from_json(people(max_rows=300, cursor_columns=["id"])))
    assert len(page.rows) == 300
    assert page.truncated
    assert page.cursor == [300]
    report, _ms = client.health()
    assert report["status"] == "ok"
    with pytest.raises(ConnectorQueryError) as caught:
        client.query(QueryRequest(source="erp", sql="DELETE FROM people"))
    assert caught.value.status == 422


def test_page_tokens_continue_exactly_where_the_last_page_stopped(
    tunnel: TunnelServer, secret: str
) -> None:
    ids: list[int] = []
    token = None
    pages = 0
    while True:
        answer = query(
            tunnel.port, secret, people(max_rows=300, page_token=token, cursor_columns=["id"])
        )
        assert answer.status == 200, answer.body
        trailer = answer.trailer
        assert trailer is not None
        ids += [row["id"] for row in answer.rows]
        assert trailer["cursor"] == [ids[-1]]
        pages += 1
        token = trailer["next_page_token"]
        assert trailer["truncated"] is (token is not None)
        if token is None:
            break
    assert pages == 4
    assert ids == list(range(1, PEOPLE + 1))

    first = query(tunnel.port, secret, people(max_rows=300)).trailer
    assert first is not None
    good = first["next_page_token"]
    prefix, payload, mac = good.split(".")
    tampered = f"{prefix}.{payload}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}"
    for bad in (tampered, "pt1.e30.AAAA", "garbage"):
        answer = query(tunnel.port, secret, people(max_rows=300, page_token=bad))
        assert answer.status == 422
        assert answer.json()["code"] == "bad_page_token"
    other_query = {
        "source": "erp",
        "sql": "SELECT id FROM people WHERE id > $1 ORDER BY id",
        "params": [0],
        "page_token": good,
    }
    assert query(tunnel.port, secret, other_query).status == 422


def test_a_kept_pii_column_fails_the_egress_scan_before_the_first_row(
    tunnel: TunnelServer, secret: str
) -> None:
    # The connector lists no policy for customers.phone: the request's keep applies, and the
    # egress scanner refuses the first chunk.
    request = {
        "source": "erp",
        "sql": "SELECT id, phone FROM customers ORDER BY id",
        "masking": {"columns": {"phone": "keep"}},
    }
    answer = query(tunnel.port, secret, request)
    assert answer.status == 422
    assert answer.json()["code"] == "pii_detected"
    assert "phone at $[0].phone" in answer.json()["detail"]
    assert pii_in(answer.wire) == []
    assert b"13800130001" not in answer.wire


def test_a_kept_pii_column_that_turns_up_mid_stream_ends_with_an_error_line(
    tunnel: TunnelServer, secret: str
) -> None:
    request = people(masking={"columns": {"note": "keep"}})
    answer = query(tunnel.port, secret, request)
    assert answer.status == 200
    assert answer.trailer is None
    assert answer.error is not None
    assert answer.error["code"] == "pii_detected"
    # Only the chunk of rows before the first note with a phone number went out.
    assert [row["id"] for row in answer.rows] == list(range(1, 101))
    assert pii_in(answer.body) == []
    assert raw_values_in(answer.wire) == []


def test_the_connectors_own_policy_wins_over_a_requested_keep(
    tunnel: TunnelServer, secret: str
) -> None:
    request = people(max_rows=50, masking={"columns": {"phone": "keep", "id_no": "keep"}})
    answer = query(tunnel.port, secret, request)
    assert answer.status == 200
    assert answer.rows[0]["phone"] == "139****0001"
    assert raw_values_in(answer.wire) == []


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("DELETE FROM people", "query_rejected"),
        ("UPDATE people SET name = 'x'", "query_rejected"),
        ("SELECT 1; DROP TABLE people", "query_rejected"),
        ("SELECT * FROM secrets", "query_rejected"),
        ('SELECT id AS "$trailer" FROM people', "reserved_column"),
        ("SELECT nonexistent FROM people", "query_failed"),
    ],
)
def test_writes_and_bad_queries_are_refused(
    tunnel: TunnelServer, secret: str, customer: CustomerDatabase, sql: str, code: str
) -> None:
    before = customer.snapshot()
    answer = query(tunnel.port, secret, {"source": "erp", "sql": sql})
    assert answer.status == 422
    assert answer.json()["code"] == code
    assert customer.snapshot() == before


def test_unknown_source_and_columns(tunnel: TunnelServer, secret: str) -> None:
    answer = query(tunnel.port, secret, {"source": "nope", "sql": "SELECT 1"})
    assert answer.status == 404
    answer = query(tunnel.port, secret, people(cursor_columns=["missing"]))
    assert answer.status == 422
    assert answer.json()["code"] == "unknown_column"
    answer = query(tunnel.port, secret, {"source": "erp", "sql": ""})
    assert answer.status == 422


# --- health ----------------------------------------------------------------------------------


def test_health_is_signed_both_ways(tunnel: TunnelServer, secret: str) -> None:
    answer = call(tunnel.port, "GET", "/v1/health", secret=secret)
    assert answer.status == 200
    verify(answer.headers, answer.body, [secret])
    report = answer.json()
    assert report["status"] == "ok"
    assert report["transport"] == "tunnel"
    assert report["sources"][0]["name"] == "erp"
    assert report["sources"][0]["ok"] is True
    assert set(report["stats"]) == {"rows_sent", "bytes_sent", "chunks_sent", "queries"}
    assert call(tunnel.port, "GET", "/v1/health", secret=None).status == 401
    assert call(tunnel.port, "GET", "/v1/health", secret=new_secret()).status == 401


def test_healthz_is_unsigned_and_minimal(tunnel: TunnelServer) -> None:
    answer = call(tunnel.port, "GET", "/healthz", secret=None)
    assert answer.status == 200
    assert answer.json() == {"status": "ok"}


# --- a real process ------------------------------------------------------------------------


def test_the_connector_process_serves_and_stops_on_sigterm(
    customer: CustomerDatabase, secret: str, tmp_path: Path
) -> None:
    port = free_port()
    raw = connector_config(customer=customer, data_dir=tmp_path / "data", secret=secret, port=port)
    process = start_connector(write_config(tmp_path / "connector.yaml", raw))
    try:

        def healthy() -> bool:
            try:
                return call(port, "GET", "/healthz", secret=None).status == 200
            except OSError:
                assert process.poll() is None, "the connector exited"
                return False

        wait_for(healthy, timeout=30, what="the connector's /healthz")
        answer = query(port, secret, people(max_rows=10), headers={"Accept-Encoding": "zstd"})
        assert answer.status == 200
        assert len(answer.rows) == 10
        assert trailer_valid([secret], answer.msg_id, answer.trailer or {}, answer.body_sha256)
    finally:
        code = stop_connector(process)
    assert code == 0
    log = Path(process.log_path).read_text()
    print(log)
    assert '"message": "connector stopped exit_code=0"' in log
    assert secret not in log
    assert raw_values_in(log.encode()) == []


def test_low_bandwidth_prefers_zstd_and_resends_rows_a_tunnel_cannot_know_were_stored(
    customer: CustomerDatabase, secret: str, tmp_path: Path
) -> None:
    raw = connector_config(
        customer=customer,
        data_dir=tmp_path,
        secret=secret,
        port=free_port(),
        low_bandwidth=True,
        max_bytes_per_s=0,
    )
    config = parse_config(raw, {})
    service = QueryService(config)
    service.startup_self_test()
    server = serve(config, service)
    both = {"Accept-Encoding": "gzip, zstd"}
    try:
        first = query(server.port, secret, people(key_columns=["id"]), headers=both)
        assert first.headers["Content-Encoding"] == "zstd"
        assert len(first.rows) == PEOPLE
        assert first.trailer is not None
        assert first.trailer["skipped"] == 0

        # The stream's end is not the cloud's commit (the pull function may die before it):
        # unchanged rows are skipped only in relay mode, where a 200 means stored.
        second = query(server.port, secret, people(key_columns=["id"]), headers=both)
        assert second.trailer is not None
        assert len(second.rows) == PEOPLE
        assert second.trailer["skipped"] == 0

        # Without key columns nothing is skipped.
        plain = query(server.port, secret, people(max_rows=10))
        assert len(plain.rows) == 10
    finally:
        server.stop()
        service.close()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "connector.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_the_tunnel_listens_with_tls(
    customer: CustomerDatabase, secret: str, tmp_path: Path
) -> None:
    import ssl

    cert, key = self_signed(tmp_path)
    raw = connector_config(
        customer=customer,
        data_dir=tmp_path,
        secret=secret,
        port=free_port(),
        tls_cert=str(cert),
        tls_key=str(key),
    )
    config = parse_config(raw, {})
    service = QueryService(config)
    service.startup_self_test()
    server = serve(config, service)
    try:
        context = ssl.create_default_context(cafile=str(cert))
        client = TunnelClient(f"https://127.0.0.1:{server.port}", secret, ssl_context=context)
        page = client.query(QueryRequest.from_json(people(max_rows=20)))
        assert len(page.rows) == 20
        report, _ms = client.health()
        assert report["status"] == "ok"
        # Plain HTTP to the TLS port gets nowhere.
        with pytest.raises(OSError):  # noqa: PT011 - reset or closed, depending on timing
            call(server.port, "GET", "/healthz", secret=None)
    finally:
        server.stop()
        service.close()
