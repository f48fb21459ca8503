# Migration Contract:
#   type: reversible
#   rollback_plan: "alembic downgrade -1"
#   verification_query: "SELECT count(*) FROM tenants;"
#   backfill_plan: "n/a"
#   owner: "platform"
#   ticket: "issue-2"
"""Foundation: tenants, API keys, quotas, connectors and their sources, the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = [
    """
    CREATE TABLE tenants (
        id          text PRIMARY KEY,
        name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
        created_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE UNIQUE INDEX tenants_name_unique ON tenants (lower(name))",
    """
    CREATE TABLE api_keys (
        id            text PRIMARY KEY,
        tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        name          text NOT NULL,
        scopes        text[] NOT NULL,
        secret_sha256 bytea NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        last_used_at  timestamptz,
        revoked_at    timestamptz
    )
    """,
    "CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at)",
    """
    CREATE TABLE tenant_quotas (
        tenant_id        text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
        daily_records    bigint CHECK (daily_records >= 0),
        monthly_records  bigint CHECK (monthly_records >= 0),
        rpm              integer CHECK (rpm > 0),
        updated_at       timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE connectors (
        id                 text PRIMARY KEY,
        tenant_id          text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        name               text NOT NULL,
        transport          text NOT NULL CHECK (transport IN ('tunnel', 'relay')),
        endpoint           text,
        secret_ciphertext  bytea NOT NULL,
        created_at         timestamptz NOT NULL DEFAULT now(),
        deleted_at         timestamptz,
        CHECK (transport = 'relay' OR endpoint IS NOT NULL)
    )
    """,
    """
    CREATE UNIQUE INDEX connectors_tenant_name ON connectors (tenant_id, lower(name))
        WHERE deleted_at IS NULL
    """,
    """
    CREATE TABLE connector_sources (
        connector_id  text NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
        name          text NOT NULL,
        engine        text NOT NULL CHECK (engine IN ('postgresql', 'mysql')),
        description   text,
        PRIMARY KEY (connector_id, name)
    )
    """,
    """
    CREATE TABLE audit_log (
        id           bigserial PRIMARY KEY,
        tenant_id    text REFERENCES tenants (id) ON DELETE CASCADE,
        actor        text NOT NULL,
        action       text NOT NULL,
        target_type  text NOT NULL,
        target_id    text,
        details      jsonb NOT NULL DEFAULT '{}'::jsonb,
        request_id   text,
        at           timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX audit_log_tenant_at ON audit_log (tenant_id, at DESC, id DESC)",
    "CREATE INDEX audit_log_action ON audit_log (action, at DESC)",
]

DOWNGRADE = [
    "DROP TABLE audit_log",
    "DROP TABLE connector_sources",
    "DROP TABLE connectors",
    "DROP TABLE tenant_quotas",
    "DROP TABLE api_keys",
    "DROP TABLE tenants",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
