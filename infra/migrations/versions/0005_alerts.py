# Migration Contract:
#   type: reversible
#   rollback_plan: "alembic downgrade -1"
#   verification_query: "SELECT count(*) FROM alerts;"
#   backfill_plan: "n/a"
#   owner: "platform"
#   ticket: "issue-5"
"""Alerts (one row per fingerprint, firing or resolved), silences, notification channels
(config sealed, a public view without secrets), notification groups and the delivery ledger,
and an index for outbox retention.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = [
    """
    CREATE TABLE alerts (
        id             text PRIMARY KEY,
        tenant_id      text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        fingerprint    text NOT NULL,
        labels         jsonb NOT NULL,
        status         text NOT NULL CHECK (status IN ('firing', 'resolved')),
        severity       text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
        summary        jsonb NOT NULL DEFAULT '{}'::jsonb,
        starts_at      timestamptz NOT NULL,
        ends_at        timestamptz,
        updated_at     timestamptz NOT NULL DEFAULT now(),
        last_event_id  bigint,
        UNIQUE (tenant_id, fingerprint)
    )
    """,
    "CREATE INDEX alerts_tenant_status ON alerts (tenant_id, status, updated_at DESC)",
    """
    CREATE TABLE silences (
        id          text PRIMARY KEY,
        tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        matchers    jsonb NOT NULL,
        starts_at   timestamptz NOT NULL,
        ends_at     timestamptz NOT NULL,
        comment     text,
        created_by  text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        deleted_at  timestamptz,
        CHECK (ends_at > starts_at)
    )
    """,
    "CREATE INDEX silences_tenant_active ON silences (tenant_id, ends_at) WHERE deleted_at IS NULL",
    """
    CREATE TABLE alert_channels (
        id                text PRIMARY KEY,
        tenant_id         text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        type              text NOT NULL CHECK (type IN ('wecom', 'email', 'webhook', 'dingtalk')),
        name              text NOT NULL,
        config_sealed     bytea NOT NULL,
        config_public     jsonb NOT NULL,
        min_severity      text NOT NULL DEFAULT 'warning'
                          CHECK (min_severity IN ('info', 'warning', 'critical')),
        created_at        timestamptz NOT NULL DEFAULT now(),
        deleted_at        timestamptz
    )
    """,
    """
    CREATE UNIQUE INDEX alert_channels_tenant_name ON alert_channels (tenant_id, lower(name))
        WHERE deleted_at IS NULL
    """,
    """
    CREATE TABLE alert_groups (
        tenant_id         text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        channel_id        text NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
        group_key         text NOT NULL,
        digest            text,
        firing            boolean NOT NULL DEFAULT false,
        last_notified_at  timestamptz,
        PRIMARY KEY (channel_id, group_key)
    )
    """,
    """
    CREATE TABLE alert_deliveries (
        id                bigserial PRIMARY KEY,
        tenant_id         text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        channel_id        text NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
        group_key         text NOT NULL,
        notification      jsonb NOT NULL,
        status            text NOT NULL CHECK (status IN ('pending', 'sent', 'dead')),
        attempts          integer NOT NULL DEFAULT 0,
        next_attempt_at   timestamptz NOT NULL DEFAULT now(),
        last_status       text,
        detail            text,
        created_at        timestamptz NOT NULL DEFAULT now(),
        updated_at        timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at)
        WHERE status = 'pending'
    """,
    # The alerting sweep deletes delivered outbox items once their dedupe keys have expired.
    "CREATE INDEX outbox_done ON outbox (done_at) WHERE done_at IS NOT NULL",
]

DOWNGRADE = [
    "DROP INDEX outbox_done",
    "DROP TABLE alert_deliveries",
    "DROP TABLE alert_groups",
    "DROP TABLE alert_channels",
    "DROP TABLE silences",
    "DROP TABLE alerts",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
