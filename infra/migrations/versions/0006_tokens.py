# Migration Contract:
#   type: reversible
#   rollback_plan: "alembic downgrade -1"
#   verification_query: "SELECT count(*) FROM token_pools;"
#   backfill_plan: "n/a"
#   owner: "platform"
#   ticket: "issue-6"
"""Token pools and tokens (secrets sealed with AES-GCM) for token-pick; status changes land in
the audit log, usage and outcomes live in Redis.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UPGRADE: list[str] = [
    """
    CREATE TABLE token_pools (
        name             text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
        health_url       text,
        alert_tenant_id  text REFERENCES tenants (id) ON DELETE SET NULL,
        version          bigint NOT NULL DEFAULT 1,
        created_at       timestamptz NOT NULL DEFAULT now(),
        updated_at       timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE tokens (
        id              text PRIMARY KEY,
        pool            text NOT NULL REFERENCES token_pools (name) ON DELETE CASCADE,
        name            text NOT NULL,
        secret_sealed   bytea NOT NULL,
        rpm             integer NOT NULL CHECK (rpm > 0),
        rph             integer NOT NULL CHECK (rph > 0),
        rpd             integer NOT NULL CHECK (rpd > 0),
        concurrency     integer NOT NULL CHECK (concurrency > 0),
        rotate_after    integer NOT NULL DEFAULT 0 CHECK (rotate_after >= 0),
        tier            integer NOT NULL DEFAULT 0 CHECK (tier BETWEEN 0 AND 1000),
        weight          integer NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000),
        status          text NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'paused', 'suspended')),
        status_reason   text,
        cooldown_until  timestamptz,
        created_at      timestamptz NOT NULL DEFAULT now(),
        updated_at      timestamptz NOT NULL DEFAULT now(),
        UNIQUE (pool, name)
    )
    """,
    "CREATE INDEX tokens_not_active ON tokens (pool, status) WHERE status <> 'active'",
]

DOWNGRADE: list[str] = [
    "DROP TABLE IF EXISTS tokens",
    "DROP TABLE IF EXISTS token_pools",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
