# Migration Contract:
#   type: reversible
#   rollback_plan: "alembic downgrade -1"
#   verification_query: "SELECT count(*) FROM query_fingerprints;"
#   backfill_plan: "n/a"
#   owner: "platform"
#   ticket: "issue-6"
"""Query fingerprints (normalised SQL + parameters) with decayed frequency for cache-sync's hot set.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE: list[str] = [
    # One row per (tenant, fingerprint): the query (sealed with AES-GCM, bound to the row, as
    # its SQL text and parameters may hold what the tenant filters on) and its frequency as an
    # exponentially decayed score: `score` is the value at `scored_at`, so the value now is
    # score * 0.5 ^ (seconds since scored_at / half-life); hits are added by the timer from
    # Redis counters, never by the request path.
    """
    CREATE TABLE query_fingerprints (
        tenant_id      text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        fingerprint    text NOT NULL CHECK (length(fingerprint) BETWEEN 16 AND 64),
        connector_id   text NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
        source         text NOT NULL,
        query_sealed   bytea NOT NULL,
        score          double precision NOT NULL DEFAULT 0 CHECK (score >= 0),
        scored_at      timestamptz NOT NULL DEFAULT now(),
        hits_total     bigint NOT NULL DEFAULT 0,
        first_seen_at  timestamptz NOT NULL DEFAULT now(),
        last_used_at   timestamptz NOT NULL DEFAULT now(),
        refreshed_at   timestamptz,
        refresh_error  text,
        PRIMARY KEY (tenant_id, fingerprint)
    )
    """,
    "CREATE INDEX query_fingerprints_connector ON query_fingerprints (connector_id)",
    "CREATE INDEX query_fingerprints_last_used ON query_fingerprints (last_used_at)",
]

DOWNGRADE: list[str] = ["DROP TABLE query_fingerprints"]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
