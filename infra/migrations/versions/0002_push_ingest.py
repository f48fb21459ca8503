# Migration Contract:
#   type: reversible
#   rollback_plan: "alembic downgrade -1"
#   verification_query: "SELECT count(*) FROM records;"
#   backfill_plan: "n/a"
#   owner: "platform"
#   ticket: "issue-3"
"""push-ingest: sources, records, conflicts, receipts, idempotency, webhooks, file uploads,
usage counters and the outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STRATEGIES = (
    "('timestamp_priority', 'source_priority', 'keep_both', 'manual_review', 'merge_fields')"
)

UPGRADE = [
    f"""
    CREATE TABLE sources (
        id                   text PRIMARY KEY,
        tenant_id            text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        name                 text NOT NULL,
        conflict_strategy    text NOT NULL DEFAULT 'timestamp_priority'
                             CHECK (conflict_strategy IN {STRATEGIES}),
        priority             integer NOT NULL DEFAULT 0,
        webhook_key_path     text,
        webhook_secrets      bytea,
        created_at           timestamptz NOT NULL DEFAULT now(),
        UNIQUE (tenant_id, name)
    )
    """,
    # No foreign key on records.tenant_id: the hot table of ingestion, loaded with COPY, where
    # a referential check per row is half the cost of a 5,000-row batch. Only the ingest
    # engine writes it, for an authenticated tenant; tenants are never deleted (suspended).
    """
    CREATE TABLE records (
        tenant_id      text NOT NULL,
        entity         text NOT NULL,
        key            text NOT NULL,
        data           jsonb,
        content_hash   bytea NOT NULL,
        updated_at     timestamptz NOT NULL,
        deleted        boolean NOT NULL DEFAULT false,
        source         text NOT NULL,
        field_times    jsonb,
        version        bigint NOT NULL DEFAULT 1,
        receipt_id     text,
        ingested_at    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, entity, key)
    )
    """,
    f"""
    CREATE TABLE data_conflicts (
        id                   text PRIMARY KEY,
        tenant_id            text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        entity               text NOT NULL,
        key                  text NOT NULL,
        source               text NOT NULL,
        strategy             text NOT NULL CHECK (strategy IN {STRATEGIES}),
        status               text NOT NULL
                             CHECK (status IN
                                    ('PENDING', 'RESOLVED', 'AUTO_RESOLVED', 'KEPT_BOTH')),
        current_data         jsonb,
        current_updated_at   timestamptz,
        current_source       text,
        current_version      bigint,
        current_hash         bytea,
        incoming_op          text NOT NULL CHECK (incoming_op IN ('upsert', 'delete')),
        incoming_data        jsonb,
        incoming_updated_at  timestamptz NOT NULL,
        reason               text NOT NULL,
        receipt_id           text,
        resolution           text,
        resolved_by          text,
        resolved_at          timestamptz,
        created_at           timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX data_conflicts_tenant_status ON data_conflicts (tenant_id, status, created_at)",
    "CREATE INDEX data_conflicts_record ON data_conflicts (tenant_id, entity, key)",
    """
    CREATE TABLE push_receipts (
        id               text PRIMARY KEY,
        tenant_id        text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        source           text NOT NULL,
        entity           text NOT NULL,
        kind             text NOT NULL CHECK (kind IN ('batch', 'webhook', 'file')),
        actor            text NOT NULL,
        request_id       text,
        idempotency_key  text,
        outcome          jsonb NOT NULL,
        archive_key      text,
        archived_at      timestamptz,
        created_at       timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX push_receipts_tenant ON push_receipts (tenant_id, created_at DESC)",
    """
    CREATE TABLE idempotency_keys (
        tenant_id        text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        scope            text NOT NULL,
        key              text NOT NULL,
        request_hash     bytea NOT NULL,
        state            text NOT NULL CHECK (state IN ('in_flight', 'completed')),
        owner            text NOT NULL,
        locked_until     timestamptz NOT NULL,
        response_status  integer,
        response_headers jsonb,
        response_body    bytea,
        created_at       timestamptz NOT NULL DEFAULT now(),
        expires_at       timestamptz NOT NULL,
        PRIMARY KEY (tenant_id, scope, key)
    )
    """,
    "CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at)",
    """
    CREATE TABLE webhook_messages (
        tenant_id    text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        source_id    text NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
        webhook_id   text NOT NULL,
        receipt_id   text NOT NULL,
        received_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (source_id, webhook_id)
    )
    """,
    """
    CREATE TABLE file_uploads (
        id            text PRIMARY KEY,
        tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        source        text NOT NULL,
        entity        text NOT NULL,
        filename      text NOT NULL,
        format        text NOT NULL CHECK (format IN ('csv', 'ndjson', 'json')),
        compression   text NOT NULL CHECK (compression IN ('none', 'gzip')),
        size          bigint,
        object_key    text NOT NULL UNIQUE,
        status        text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'processing', 'done', 'failed')),
        conflict_strategy text,
        accepted      bigint NOT NULL DEFAULT 0,
        rejected      bigint NOT NULL DEFAULT 0,
        rows_done     bigint NOT NULL DEFAULT 0,
        bytes_read    bigint NOT NULL DEFAULT 0,
        errors        jsonb NOT NULL DEFAULT '[]'::jsonb,
        outcome       jsonb NOT NULL DEFAULT '{}'::jsonb,
        failure       text,
        receipt_id    text,
        actor         text NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        updated_at    timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX file_uploads_tenant ON file_uploads (tenant_id, created_at DESC)",
    """
    CREATE TABLE tenant_usage (
        tenant_id  text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        day        date NOT NULL,
        records    bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant_id, day)
    )
    """,
    """
    CREATE TABLE outbox (
        id            bigserial PRIMARY KEY,
        topic         text NOT NULL,
        dedupe_key    text UNIQUE,
        payload       jsonb NOT NULL,
        blob          bytea,
        attempts      integer NOT NULL DEFAULT 0,
        available_at  timestamptz NOT NULL DEFAULT now(),
        last_error    text,
        created_at    timestamptz NOT NULL DEFAULT now(),
        done_at       timestamptz
    )
    """,
    "CREATE INDEX outbox_pending ON outbox (available_at) WHERE done_at IS NULL",
]

DOWNGRADE = [
    "DROP TABLE outbox",
    "DROP TABLE tenant_usage",
    "DROP TABLE file_uploads",
    "DROP TABLE webhook_messages",
    "DROP TABLE idempotency_keys",
    "DROP TABLE push_receipts",
    "DROP TABLE data_conflicts",
    "DROP TABLE records",
    "DROP TABLE sources",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
