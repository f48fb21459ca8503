"""Alembic environment: plain SQL migrations over SQLAlchemy's pg8000 dialect.

Runs at deploy time only (`python -m infra.migrate upgrade`); functions never import alembic.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from infra.migrate import sqlalchemy_url

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url") or sqlalchemy_url(None)
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=None, transaction_per_migration=True
        )
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or sqlalchemy_url(None),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
