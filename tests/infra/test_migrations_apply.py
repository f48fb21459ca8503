"""Every migration applies, rolls back and applies again on a real PostgreSQL, and each
contract's verification query runs after the upgrade."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from hybrid.db import Database
from infra.migrate import downgrade, upgrade

VERSIONS = Path(__file__).resolve().parents[2] / "infra" / "migrations" / "versions"


def _database(url: str, name: str) -> str:
    admin = Database(url, application_name="migration-test")
    with admin.transaction() as tx:
        tx.execute("SELECT 1")
    # CREATE DATABASE cannot run inside a transaction: use a raw autocommit statement.
    connection = admin._connect()
    connection.run(f'DROP DATABASE IF EXISTS "{name}"')
    connection.run(f'CREATE DATABASE "{name}"')
    admin.close()
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def test_migrations_upgrade_downgrade_and_upgrade_again(endpoints) -> None:
    url = _database(endpoints.database_url, "migration_roundtrip")
    upgrade(url)
    db = Database(url, application_name="migration-test")
    with db.transaction() as tx:
        tables = {
            row["tablename"]
            for row in tx.rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert {"tenants", "api_keys", "records", "outbox", "alembic_version"} <= tables
        for path in sorted(VERSIONS.glob("*.py")):
            query = re.search(r'verification_query: "(.*)"', path.read_text()).group(1)
            tx.execute(query.rstrip(";"))
    db.close()
    downgrade(url, "base")
    with db.transaction() as tx:
        left = {
            row["tablename"]
            for row in tx.rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    db.close()
    assert left <= {"alembic_version"}
    upgrade(url)
    with db.transaction() as tx:
        assert (
            tx.scalar("SELECT version_num FROM alembic_version")
            == sorted(p.stem.split("_")[0] for p in VERSIONS.glob("*.py"))[-1]
        )
    db.close()
