"""Fencing: a pull driver that stalled past its lease and resumes after another took charge
stores nothing; the position and the cursor move only with the rows."""

from __future__ import annotations

import pytest


@pytest.fixture
def running(pull, world, pull_env):
    """A running tunnel execution of a job, as the timer would leave it."""
    from hybrid.db import database
    from hybrid.sync import executions
    from hybrid.sync.jobs import JobSpec, create_job

    with database(pull_env["DATABASE_URL"]).transaction() as tx:
        job = create_job(
            tx,
            world["tenant_id"],
            JobSpec(
                name="t",
                connector_id=world["tunnel"],
                source="erp",
                table="orders",
                cursor_column="updated_at",
                key_columns=("id",),
            ),
        )
        _job, execution = executions.start(tx, job.id, tenant_id=None, trigger="manual")
    return execution


def _rows(ids, stamp="2026-11-20T08:00:00+00:00"):
    return [{"id": i, "updated_at": stamp, "v": f"r{i}"} for i in ids]


def _state(pull_env, execution_id):
    from hybrid.db import database

    with database(pull_env["DATABASE_URL"]).transaction() as tx:
        keys = sorted(r["key"] for r in tx.rows("SELECT key FROM records"))
        position = tx.scalar("SELECT position FROM sync_executions WHERE id = :e", e=execution_id)
        cursor = tx.scalar(
            "SELECT j.cursor FROM sync_jobs j JOIN sync_executions e ON e.job_id = j.id "
            "WHERE e.id = :e",
            e=execution_id,
        )
    return keys, position, cursor


def test_a_stalled_driver_resuming_after_a_takeover_writes_nothing(running, pull_env):
    from hybrid.db import database
    from hybrid.sync import executions

    db = database(pull_env["DATABASE_URL"])
    with db.transaction() as tx:
        first = executions.take_charge(tx, running.id)
    with db.transaction() as tx:
        executions.store_page(
            tx, running.id, fence=first.fence, rows=_rows([1, 2]), cursor=None, more=True
        )
    # The first driver freezes; its lease runs out and a second driver takes charge.
    with db.transaction() as tx:
        second = executions.take_charge(tx, running.id)
    assert second.fence > first.fence
    before = _state(pull_env, running.id)
    with pytest.raises(executions.StaleFenceError), db.transaction() as tx:
        executions.store_page(
            tx, running.id, fence=first.fence, rows=_rows([3, 4]), cursor=None, more=False
        )
    assert _state(pull_env, running.id) == before
    assert before[0] == ["1", "2"]
    assert before[1] == {"after": ["2026-11-20T08:00:00+00:00", 2]}
    with db.transaction() as tx:
        result = executions.store_page(
            tx, running.id, fence=second.fence, rows=_rows([3]), cursor=None, more=False
        )
    assert result.finished
    assert result.status == "success"
    keys, _position, cursor = _state(pull_env, running.id)
    assert keys == ["1", "2", "3"]
    assert cursor == ["2026-11-20T08:00:00+00:00"]


def test_a_page_that_fails_to_store_moves_neither_position_nor_cursor(running, pull_env):
    from hybrid.db import database
    from hybrid.sync import executions

    db = database(pull_env["DATABASE_URL"])
    with db.transaction() as tx:
        holder = executions.take_charge(tx, running.id)
    before = _state(pull_env, running.id)

    def die_before_commit() -> None:
        with db.transaction() as tx:
            executions.store_page(
                tx, running.id, fence=holder.fence, rows=_rows([1, 2]), cursor=None, more=True
            )
            raise RuntimeError("the function died before the commit")

    with pytest.raises(RuntimeError):
        die_before_commit()
    assert _state(pull_env, running.id) == before
    assert before[0] == []


def test_rows_the_connector_left_out_as_unchanged_still_move_the_position(running, pull_env):
    from hybrid.db import database
    from hybrid.sync import executions

    db = database(pull_env["DATABASE_URL"])
    with db.transaction() as tx:
        holder = executions.take_charge(tx, running.id)
        executions.store_page(
            tx,
            running.id,
            fence=holder.fence,
            rows=_rows([1]),
            cursor=["2026-11-21T00:00:00+00:00", 9],
            skipped=8,
            more=True,
        )
    keys, position, cursor = _state(pull_env, running.id)
    assert keys == ["1"]
    assert position == {"after": ["2026-11-21T00:00:00+00:00", 9]}
    assert cursor == ["2026-11-21T00:00:00+00:00"]
