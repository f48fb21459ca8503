# Migration Contract:
#   type: reversible
#   rollback_plan: "alembic downgrade -1"
#   verification_query: "SELECT count(*) FROM sync_jobs;"
#   backfill_plan: "n/a"
#   owner: "platform"
#   ticket: "issue-4"
"""Pull sync: jobs with their cursor and fencing number, executions, relay jobs and the ledger
of result chunks, and the connectors' heartbeat columns.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STRATEGIES = (
    "('timestamp_priority', 'source_priority', 'keep_both', 'manual_review', 'merge_fields')"
)

UPGRADE = [
    """
    ALTER TABLE connectors
        ADD COLUMN last_seen_at    timestamptz,
        ADD COLUMN agent_version   text,
        ADD COLUMN agent_instance  text,
        ADD COLUMN spool_depth     integer
    """,
    f"""
    CREATE TABLE sync_jobs (
        id                    text PRIMARY KEY,
        tenant_id             text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        name                  text NOT NULL,
        connector_id          text NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
        source                text NOT NULL,
        table_name            text NOT NULL,
        cursor_column         text,
        key_columns           text[] NOT NULL CHECK (cardinality(key_columns) BETWEEN 1 AND 8),
        mode                  text NOT NULL CHECK (mode IN ('incremental', 'full')),
        schedule              text,
        masking               jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        conflict_strategy     text CHECK (conflict_strategy IN {STRATEGIES}),
        overlap_s             integer NOT NULL DEFAULT 60 CHECK (overlap_s >= 0),
        page_rows             integer NOT NULL DEFAULT 5000 CHECK (page_rows BETWEEN 1 AND 100000),
        paused                boolean NOT NULL DEFAULT false,
        cursor                jsonb,
        fence                 bigint NOT NULL DEFAULT 0,
        running_execution     text,
        next_run_at           timestamptz,
        consecutive_failures  integer NOT NULL DEFAULT 0,
        created_at            timestamptz NOT NULL DEFAULT now(),
        updated_at            timestamptz NOT NULL DEFAULT now(),
        deleted_at            timestamptz,
        CHECK (mode = 'full' OR cursor_column IS NOT NULL)
    )
    """,
    """
    CREATE UNIQUE INDEX sync_jobs_tenant_name ON sync_jobs (tenant_id, lower(name))
        WHERE deleted_at IS NULL
    """,
    """
    CREATE INDEX sync_jobs_due ON sync_jobs (next_run_at)
        WHERE deleted_at IS NULL AND NOT paused
    """,
    """
    CREATE TABLE sync_executions (
        id                 text PRIMARY KEY,
        job_id             text NOT NULL REFERENCES sync_jobs (id) ON DELETE CASCADE,
        tenant_id          text NOT NULL,
        mode               text NOT NULL CHECK (mode IN ('incremental', 'full')),
        trigger            text NOT NULL CHECK (trigger IN ('schedule', 'manual')),
        transport          text NOT NULL CHECK (transport IN ('tunnel', 'relay')),
        status             text NOT NULL
                           CHECK (status IN ('running', 'success', 'failed', 'partial',
                                             'cancelled')),
        fence              bigint NOT NULL,
        position           jsonb,
        started_at         timestamptz NOT NULL DEFAULT now(),
        progressed_at      timestamptz NOT NULL DEFAULT now(),
        ended_at           timestamptz,
        pages              integer NOT NULL DEFAULT 0,
        records_processed  bigint NOT NULL DEFAULT 0,
        records_succeeded  bigint NOT NULL DEFAULT 0,
        records_failed     bigint NOT NULL DEFAULT 0,
        records_skipped    bigint NOT NULL DEFAULT 0,
        error              text
    )
    """,
    "CREATE INDEX sync_executions_job ON sync_executions (job_id, started_at DESC, id DESC)",
    """
    CREATE TABLE relay_jobs (
        id              text PRIMARY KEY,
        connector_id    text NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
        tenant_id       text NOT NULL,
        kind            text NOT NULL CHECK (kind IN ('pull', 'query', 'ping')),
        execution_id    text REFERENCES sync_executions (id) ON DELETE CASCADE,
        fence           bigint,
        payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
        status          text NOT NULL
                        CHECK (status IN ('pending', 'leased', 'done', 'failed', 'cancelled')),
        attempt         integer NOT NULL DEFAULT 0,
        next_seq        integer NOT NULL DEFAULT 0,
        leased_by       text,
        leased_until    timestamptz,
        result          jsonb,
        created_at      timestamptz NOT NULL DEFAULT now(),
        updated_at      timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE INDEX relay_jobs_open ON relay_jobs (connector_id, created_at)
        WHERE status IN ('pending', 'leased')
    """,
    """
    CREATE TABLE relay_chunks (
        job_id       text NOT NULL REFERENCES relay_jobs (id) ON DELETE CASCADE,
        seq          integer NOT NULL,
        attempt      integer NOT NULL,
        row_count    integer NOT NULL,
        body         bytea,
        received_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (job_id, seq)
    )
    """,
]

DOWNGRADE = [
    "DROP TABLE relay_chunks",
    "DROP TABLE relay_jobs",
    "DROP TABLE sync_executions",
    "DROP TABLE sync_jobs",
    """
    ALTER TABLE connectors
        DROP COLUMN last_seen_at,
        DROP COLUMN agent_version,
        DROP COLUMN agent_instance,
        DROP COLUMN spool_depth
    """,
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
