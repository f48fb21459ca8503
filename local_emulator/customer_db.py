"""A customer's database for the demo, the end-to-end tests and the pull benchmark: its own
database inside the embedded PostgreSQL, a `customers` table full of fake but checksum-valid
PII, and the connector's read-only role created with the statements of ``connector/GRANTS.md``.

Two generators: a fast one (random names, mobile numbers, ID numbers with their MOD 11-2 check
character, Luhn-valid bank cards; about 300 bytes a row) for large tables, and Faker ``zh_CN``
for realism. Both are seeded, so a run can be repeated.
"""

from __future__ import annotations

import io
import random
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
GRANTS = ROOT / "connector" / "GRANTS.md"
TABLE = "customers"
COLUMNS = (
    "id", "name", "phone", "id_card", "bank_card", "email", "city", "note", "amount", "updated_at"
)  # fmt: skip
# What the connector does with each column of `customers` (its own policy, not the cloud's).
MASKING = {
    "columns": {
        "name": "mask_name",
        "phone": "mask_phone",
        "id_card": "mask_id_card",
        "bank_card": "mask_bank_card",
        "email": "mask_email",
    },
    "unlisted": "detect",
}
SCHEMA = f"""
CREATE TABLE {TABLE} (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    phone       text,
    id_card     text,
    bank_card   text,
    email       text,
    city        text,
    note        text,
    amount      numeric(12, 2),
    updated_at  timestamptz NOT NULL
);
CREATE INDEX customers_updated ON {TABLE} (updated_at, id);
"""
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
)
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉兰海燕"
_CITIES = ("北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京", "西安", "苏州")
_MOBILE_PREFIXES = ("130", "131", "135", "138", "139", "150", "151", "158", "177", "186", "188")
_ID_REGIONS = ("110105", "310101", "440305", "330106", "510104", "420102", "320102")


def id_check_char(body: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def luhn_complete(prefix: str) -> str:
    digits = [int(d) for d in prefix + "0"]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 1:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return prefix + str((10 - total % 10) % 10)


class FastPeople:
    """Quick fake people with checksum-valid numbers (about 10 µs a row)."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def row(self, key: int, updated_at: datetime) -> tuple[Any, ...]:
        r = self._random
        name = r.choice(_SURNAMES) + "".join(r.choice(_GIVEN) for _ in range(r.randint(1, 2)))
        phone = r.choice(_MOBILE_PREFIXES) + f"{r.randrange(10**8):08d}"
        birth = datetime(1950, 1, 1) + timedelta(days=r.randrange(20000))
        body = f"{r.choice(_ID_REGIONS)}{birth:%Y%m%d}{r.randrange(1000):03d}"
        bank = luhn_complete("62" + f"{r.randrange(10**15):015d}")
        email = f"user{key}_{r.randrange(10**6)}@example.cn"
        note = f"客户备注：请联系 {phone[:3]} {phone[3:7]} {phone[7:]}，订单号 {r.randrange(10**9)}"
        return (
            key, name, phone, body + id_check_char(body), bank, email, r.choice(_CITIES),
            note, f"{r.randrange(10**8) / 100:.2f}", updated_at,
        )  # fmt: skip


class FakerPeople:
    """Faker ``zh_CN`` people; some numbers are written with full-width digits."""

    def __init__(self, seed: int) -> None:
        from faker import Faker

        self._faker = Faker("zh_CN")
        self._faker.seed_instance(seed)

    def row(self, key: int, updated_at: datetime) -> tuple[Any, ...]:
        f = self._faker
        phone = f.phone_number()
        if key % 7 == 0:  # full-width digits, as some forms store them
            phone = phone.translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"})
        note = f"回访电话 {f.phone_number()}，身份证 {f.ssn()}，卡号 {f.credit_card_number()}"
        return (
            key, f.name(), phone, f.ssn(), f.credit_card_number(), f.email(), f.city(), note,
            f"{f.pydecimal(left_digits=6, right_digits=2, positive=True)}", updated_at,
        )  # fmt: skip


@dataclass
class CustomerDatabase:
    """One customer database and the connector's read-only role in it."""

    admin_url: str
    database: str
    role: str
    password: str

    @classmethod
    def create(cls, admin_url: str, database: str) -> CustomerDatabase:
        """A fresh database (dropped first if it exists) with the `customers` table and the
        connector role of GRANTS.md, allowed to read `customers` only."""
        import pg8000.native

        role = f"{database}_connector"
        password = secrets.token_urlsafe(18)
        with _connect(admin_url) as admin:
            admin.run(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            admin.run(f'DROP ROLE IF EXISTS "{role}"')
            admin.run(f'CREATE DATABASE "{database}"')
        created = cls(admin_url, database, role, password)
        with created.connect() as conn:
            for statement in _split(SCHEMA):
                conn.run(statement)
            conn.run("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            for statement in grants_statements(database, role, password, [TABLE]):
                try:
                    conn.run(statement)
                except pg8000.native.DatabaseError as exc:
                    raise RuntimeError(f"GRANTS.md statement failed: {exc}") from None
        return created

    @contextmanager
    def connect(self) -> Iterator[Any]:
        with _connect(_with_database(self.admin_url, self.database)) as conn:
            yield conn

    @property
    def reader_url(self) -> str:
        """The URL the connector uses: the read-only role."""
        parts = urlsplit(self.admin_url)
        netloc = f"{quote(self.role)}:{quote(self.password, safe='')}@{parts.hostname}:{parts.port}"
        return urlunsplit(("postgresql", netloc, f"/{self.database}", "", ""))

    def connector_sources(self, **extra: Any) -> dict[str, Any]:
        """The connector's `sources` block for this database: source "erp" reading `customers`
        through the read-only role, masked with MASKING; `extra` adds source settings."""
        return {
            "erp": {
                "engine": "postgresql",
                "url": self.reader_url,
                "schema": "public",
                "allowed_tables": [TABLE],
                "masking": {TABLE: MASKING},
                **extra,
            }
        }

    def fill(
        self,
        count: int,
        *,
        start: int = 1,
        seed: int = 7,
        faker: bool = False,
        updated_at: datetime | None = None,
        spread_s: int = 3600,
    ) -> None:
        """Insert `count` people with ids from `start`, stamped over `spread_s` seconds up to
        `updated_at` (COPY, in batches)."""
        people = FakerPeople(seed) if faker else FastPeople(seed)
        end = updated_at or datetime.now(timezone.utc).replace(microsecond=0)
        with self.connect() as conn:
            batch = 20_000
            for offset in range(0, count, batch):
                buffer = io.StringIO()
                for key in range(start + offset, start + min(offset + batch, count)):
                    stamp = end - timedelta(seconds=(count - (key - start)) * spread_s // count)
                    buffer.write("\t".join(_copy_text(v) for v in people.row(key, stamp)) + "\n")
                buffer.seek(0)
                conn.run(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN", stream=buffer)

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        with self.connect() as conn:
            return conn.run(sql, **params) or []

    def count(self) -> int:
        return int(self.run(f"SELECT count(*) FROM {TABLE}")[0][0])

    def drop(self) -> None:
        with _connect(self.admin_url) as admin:
            admin.run(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            admin.run(f'DROP ROLE IF EXISTS "{self.role}"')


def run_sql(url: str, sql: str, **params: Any) -> list[list[Any]]:
    """One statement against the database at `url` (the demo reads the cloud's records)."""
    with _connect(url) as conn:
        return conn.run(sql, **params) or []


def grants_statements(database: str, role: str, password: str, tables: list[str]) -> list[str]:
    """GRANTS.md's PostgreSQL block with its placeholders filled in, one line per table."""
    text = GRANTS.read_text(encoding="utf-8")
    match = re.search(r"<!-- grants:postgres -->\s*```sql\n(.*?)```", text, re.S)
    if match is None:
        raise RuntimeError("connector/GRANTS.md lost its PostgreSQL block")
    lines: list[str] = []
    for line in match.group(1).splitlines():
        line = line.split("--")[0].rstrip()
        if not line:
            continue
        if "<table>" in line:
            lines.extend(line.replace("<table>", table) for table in tables)
        else:
            lines.append(line)
    sql = "\n".join(lines)
    sql = (
        sql.replace("<connector_role>", f'"{role}"')
        .replace("<password>", password.replace("'", "''"))
        .replace("<database>", f'"{database}"')
        .replace("<schema>", "public")
    )
    return _split(sql)


def _split(sql: str) -> list[str]:
    return [part.strip() for part in sql.split(";") if part.strip()]


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


@contextmanager
def _connect(url: str) -> Iterator[Any]:
    from urllib.parse import unquote

    import pg8000.native

    parts = urlsplit(url)
    conn = pg8000.native.Connection(
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or "") or None,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        database=(parts.path or "/postgres").lstrip("/") or "postgres",
    )
    try:
        yield conn
    finally:
        conn.close()
