"""The transactional outbox against a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from hybrid import outbox
from hybrid.db import Database


@pytest.fixture
def db(clean_db: str) -> Iterator[Database]:
    database = Database(clean_db)
    yield database
    database.close()


def _expire_leases(db: Database) -> None:
    """What waiting out the lease does: the claimed items become due again."""
    with db.transaction() as tx:
        tx.execute("UPDATE outbox SET available_at = now() - interval '1 second'")


def test_enqueue_and_claim_round_trip(db: Database) -> None:
    with db.transaction() as tx:
        first = outbox.enqueue(
            tx, "alerts", {"n": 1, "at": datetime(2026, 11, 23, tzinfo=timezone.utc)}
        )
        second = outbox.enqueue(tx, "archive", {"n": 2}, blob=b"\x00raw\xff")
    assert first is not None
    assert second is not None
    assert second > first

    items = outbox.claim(db, topics=["alerts", "archive"], limit=10)

    assert [(i.id, i.topic, i.attempts) for i in items] == [
        (first, "alerts", 1),
        (second, "archive", 1),
    ]
    assert items[0].payload == {"n": 1, "at": "2026-11-23T00:00:00+00:00"}
    assert items[0].blob is None
    assert items[1].blob == b"\x00raw\xff"


def test_enqueue_in_a_rolled_back_transaction_leaves_nothing(db: Database) -> None:
    class Boom(Exception):
        pass

    def enqueue_then_fail() -> None:
        with db.transaction() as tx:
            assert outbox.enqueue(tx, "alerts", {"n": 1}, dedupe_key="k1") is not None
            raise Boom()

    with pytest.raises(Boom):
        enqueue_then_fail()

    with db.transaction() as tx:
        assert tx.scalar("SELECT count(*) FROM outbox") == 0
        # The dedupe key was not taken either.
        assert outbox.enqueue(tx, "alerts", {"n": 1}, dedupe_key="k1") is not None


def test_dedupe_key_enqueues_once(db: Database) -> None:
    with db.transaction() as tx:
        first = outbox.enqueue(tx, "alerts", {"n": 1}, dedupe_key="quota80:t:2026-11")
        again = outbox.enqueue(tx, "alerts", {"n": 2}, dedupe_key="quota80:t:2026-11")
    with db.transaction() as tx:
        later = outbox.enqueue(tx, "alerts", {"n": 3}, dedupe_key="quota80:t:2026-11")
        other = outbox.enqueue(tx, "alerts", {"n": 4}, dedupe_key="quota80:t:2026-12")
    assert first is not None
    assert again is None
    assert later is None
    assert other is not None
    assert [i.payload["n"] for i in outbox.claim(db, topics=["alerts"], limit=10)] == [1, 4]


def test_claim_filters_topics_and_due_time(db: Database) -> None:
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    with db.transaction() as tx:
        outbox.enqueue(tx, "alerts", {"n": 1})
        outbox.enqueue(tx, "archive", {"n": 2})
        outbox.enqueue(tx, "alerts", {"n": 3}, available_at=future)

    assert [i.payload["n"] for i in outbox.claim(db, topics=["alerts"], limit=10)] == [1]
    assert outbox.claim(db, topics=[], limit=10) == []


def test_claimed_item_is_not_claimed_again_within_its_lease(db: Database) -> None:
    with db.transaction() as tx:
        outbox.enqueue(tx, "alerts", {"n": 1})
    assert len(outbox.claim(db, topics=["alerts"], limit=10, lease_seconds=60)) == 1
    assert outbox.claim(db, topics=["alerts"], limit=10) == []


def test_claimed_but_not_done_item_comes_back_after_the_lease(db: Database) -> None:
    with db.transaction() as tx:
        item_id = outbox.enqueue(tx, "alerts", {"n": 1})
    (first,) = outbox.claim(db, topics=["alerts"], limit=10)
    # The worker crashes: no mark_done, no mark_failed. The lease runs out.
    _expire_leases(db)

    (again,) = outbox.claim(db, topics=["alerts"], limit=10)

    assert first.id == again.id == item_id
    assert again.attempts == 2


def test_mark_done_removes_the_item_from_claims(db: Database) -> None:
    with db.transaction() as tx:
        outbox.enqueue(tx, "alerts", {"n": 1})
    (item,) = outbox.claim(db, topics=["alerts"], limit=10)
    assert outbox.mark_done(db, item.id) is True
    assert outbox.mark_done(db, item.id) is False
    _expire_leases(db)
    assert outbox.claim(db, topics=["alerts"], limit=10) == []


def test_mark_done_inside_a_caller_transaction(db: Database) -> None:
    with db.transaction() as tx:
        outbox.enqueue(tx, "alerts", {"n": 1})
    (item,) = outbox.claim(db, topics=["alerts"], limit=10)
    with db.transaction() as tx:
        assert outbox.mark_done(tx, item.id) is True
        assert tx.scalar("SELECT done_at IS NOT NULL FROM outbox WHERE id = :id", id=item.id)


def test_mark_failed_backs_off_and_stores_a_redacted_truncated_error(db: Database) -> None:
    with db.transaction() as tx:
        outbox.enqueue(tx, "alerts", {"n": 1})
    (item,) = outbox.claim(db, topics=["alerts"], limit=10)
    error = "upload to https://user:hunter2secret@cos.example failed " + "x" * 2000

    assert outbox.mark_failed(db, item.id, error, backoff_s=300) is True

    with db.transaction() as tx:
        row = tx.one(
            "SELECT last_error, available_at > now() + interval '290 seconds' AS later "
            "FROM outbox WHERE id = :id",
            id=item.id,
        )
    assert row is not None
    assert row["later"] is True
    assert len(row["last_error"]) == outbox.MAX_ERROR_LENGTH
    assert "hunter2secret" not in row["last_error"]
    assert outbox.claim(db, topics=["alerts"], limit=10) == []
    _expire_leases(db)
    (again,) = outbox.claim(db, topics=["alerts"], limit=10)
    assert again.attempts == 2


def test_max_attempts_leaves_dead_letters(db: Database) -> None:
    with db.transaction() as tx:
        outbox.enqueue(tx, "alerts", {"n": 1})
    for attempt in (1, 2):
        (item,) = outbox.claim(db, topics=["alerts"], limit=10, max_attempts=2)
        assert item.attempts == attempt
        outbox.mark_failed(db, item.id, "Boom", backoff_s=0)
    assert outbox.claim(db, topics=["alerts"], limit=10, max_attempts=2) == []
    with db.transaction() as tx:
        assert tx.scalar("SELECT last_error FROM outbox") == "Boom"


def test_claim_respects_limit_and_age_order(db: Database) -> None:
    with db.transaction() as tx:
        ids = [outbox.enqueue(tx, "alerts", {"n": n}) for n in range(5)]
    first = outbox.claim(db, topics=["alerts"], limit=2)
    rest = outbox.claim(db, topics=["alerts"], limit=10)
    assert [i.id for i in first] == ids[:2]
    assert [i.id for i in rest] == ids[2:]


def test_concurrent_claimers_never_get_the_same_item(db: Database, clean_db: str) -> None:
    total = 300
    with db.transaction() as tx:
        for n in range(total):
            outbox.enqueue(tx, "archive", {"n": n})

    workers = 6
    claimed: list[list[int]] = [[] for _ in range(workers)]
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        own = Database(clean_db)
        try:
            barrier.wait()
            while True:
                items = outbox.claim(own, topics=["archive"], limit=7)
                if not items:
                    return
                claimed[index].extend(item.id for item in items)
                # Give the other claimers a turn, so the run really interleaves.
                time.sleep(0.005)
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    every = [item for chunk in claimed for item in chunk]
    assert len(every) == len(set(every)) == total
    assert sum(1 for chunk in claimed if chunk) >= 2


def test_rejects_bad_arguments(db: Database) -> None:
    with db.transaction() as tx:
        with pytest.raises(ValueError, match="timezone"):
            outbox.enqueue(tx, "alerts", {}, available_at=datetime(2026, 1, 1))
        with pytest.raises(TypeError):
            outbox.enqueue(tx, "alerts", {"x": object()})
    with pytest.raises(ValueError, match="limit"):
        outbox.claim(db, topics=["alerts"], limit=0)
