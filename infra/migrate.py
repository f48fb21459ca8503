"""Apply the schema migrations (deploy time and the local emulator; never inside a function).

python -m infra.migrate upgrade [--url postgresql://...]   (default: $DATABASE_URL)
python -m infra.migrate downgrade --to base
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def sqlalchemy_url(database_url: str | None) -> str:
    """postgresql://… → postgresql+pg8000://… (SQLAlchemy's pg8000 dialect)."""
    url = database_url or os.environ.get("DATABASE_URL", "")
    if not url:
        raise SystemExit("DATABASE_URL is not set")
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql+pg8000"))


def alembic_config(database_url: str | None = None) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)  # type: ignore[arg-type]


def downgrade(database_url: str | None = None, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.migrate")
    parser.add_argument("action", choices=["upgrade", "downgrade"])
    parser.add_argument("--url", help="PostgreSQL URL (default: $DATABASE_URL)")
    parser.add_argument("--to", default=None, help="target revision (head / base / id)")
    args = parser.parse_args(argv)
    if args.action == "upgrade":
        upgrade(args.url, args.to or "head")
    else:
        downgrade(args.url, args.to or "-1")


if __name__ == "__main__":
    main()
