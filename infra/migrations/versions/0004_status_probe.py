# Migration Contract:
#   type: reversible
#   rollback_plan: "alembic downgrade -1"
#   verification_query: "SELECT count(*) FROM link_states;"
#   backfill_plan: "n/a"
#   owner: "platform"
#   ticket: "issue-5"
"""Status probe: every probe's sample, and each link's current state with its hysteresis
counts (one row per connector, source '' for the cloud↔connector link).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STATES = "('unknown', 'connected', 'degraded', 'disconnected')"

UPGRADE = [
    """
    ALTER TABLE connectors
        ADD COLUMN latency_threshold_ms integer NOT NULL DEFAULT 1000
            CHECK (latency_threshold_ms > 0)
    """,
    """
    CREATE TABLE probe_samples (
        id            bigserial PRIMARY KEY,
        connector_id  text NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
        tenant_id     text NOT NULL,
        source        text NOT NULL DEFAULT '',
        ok            boolean NOT NULL,
        latency_ms    double precision,
        state         text NOT NULL,
        error         text,
        at            timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX probe_samples_link_at ON probe_samples (connector_id, source, at DESC)",
    "CREATE INDEX probe_samples_at ON probe_samples (at)",
    f"""
    CREATE TABLE link_states (
        connector_id   text NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
        source         text NOT NULL DEFAULT '',
        tenant_id      text NOT NULL,
        state          text NOT NULL CHECK (state IN {STATES}),
        since          timestamptz,
        failures       integer NOT NULL DEFAULT 0,
        successes      integer NOT NULL DEFAULT 0,
        last_ok_at     timestamptz,
        last_probe_at  timestamptz,
        latency_ms     double precision,
        error          text,
        PRIMARY KEY (connector_id, source)
    )
    """,
]

DOWNGRADE = [
    "DROP TABLE link_states",
    "DROP TABLE probe_samples",
    "ALTER TABLE connectors DROP COLUMN latency_threshold_ms",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
