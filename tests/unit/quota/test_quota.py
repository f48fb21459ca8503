"""Daily/monthly record quotas against a real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from hybrid import outbox, quota
from hybrid.db import Database
from hybrid.quota import QuotaExceededError, QuotaState

TENANT = "ten_quota"
OTHER = "ten_other"
NOW = datetime(2026, 11, 23, 15, 30, tzinfo=timezone.utc)


@pytest.fixture
def db(clean_db: str) -> Iterator[Database]:
    database = Database(clean_db)
    with database.transaction() as tx:
        for tenant in (TENANT, OTHER):
            tx.execute("INSERT INTO tenants (id, name) VALUES (:id, :id)", id=tenant)
    yield database
    database.close()


def consume(
    db: Database,
    records: int,
    *,
    daily: int | None = None,
    monthly: int | None = None,
    now: datetime = NOW,
    tenant: str = TENANT,
) -> QuotaState:
    with db.transaction() as tx:
        return quota.consume(
            tx,
            tenant_id=tenant,
            records=records,
            daily_limit=daily,
            monthly_limit=monthly,
            now=now,
        )


def usage(db: Database, tenant: str = TENANT) -> dict[str, int]:
    with db.transaction() as tx:
        rows = tx.rows(
            "SELECT day, records FROM tenant_usage WHERE tenant_id = :t ORDER BY day", t=tenant
        )
    return {row["day"].isoformat(): int(row["records"]) for row in rows}


def alerts(db: Database) -> list[dict[str, object]]:
    with db.transaction() as tx:
        rows = tx.rows("SELECT payload, dedupe_key FROM outbox WHERE topic = 'alerts' ORDER BY id")
    return [{**row["payload"], "dedupe_key": row["dedupe_key"]} for row in rows]


def test_counts_per_day_and_month(db: Database) -> None:
    first = consume(db, 100, daily=1000, monthly=10_000)
    second = consume(db, 50, daily=1000, monthly=10_000)
    next_day = consume(db, 7, daily=1000, monthly=10_000, now=NOW + timedelta(days=1))

    assert first == QuotaState(100, 100, 1000, 10_000)
    assert second == QuotaState(150, 150, 1000, 10_000)
    assert next_day == QuotaState(7, 157, 1000, 10_000)
    assert usage(db) == {"2026-11-23": 150, "2026-11-24": 7}
    assert usage(db, OTHER) == {}


def test_month_total_starts_again_in_a_new_month(db: Database) -> None:
    consume(db, 40, now=datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc))
    state = consume(db, 2, now=datetime(2027, 1, 1, 0, 0, 1, tzinfo=timezone.utc))
    assert state == QuotaState(2, 2, None, None)


def test_day_is_the_utc_day(db: Database) -> None:
    shanghai = timezone(timedelta(hours=8))
    # 2026-11-24 01:00 in Shanghai is still 2026-11-23 in UTC.
    consume(db, 3, now=datetime(2026, 11, 24, 1, 0, tzinfo=shanghai))
    assert usage(db) == {"2026-11-23": 3}


def test_unlimited_still_counts(db: Database) -> None:
    assert consume(db, 5) == QuotaState(5, 5, None, None)
    assert consume(db, 5) == QuotaState(10, 10, None, None)
    assert alerts(db) == []


def test_exhausted_daily_quota_raises_with_reset_at_next_utc_midnight(db: Database) -> None:
    consume(db, 90, daily=100)

    with pytest.raises(QuotaExceededError) as caught:
        consume(db, 11, daily=100)

    error = caught.value
    assert error.which == "daily"
    assert error.limit == 100
    assert error.used == 90
    assert error.reset_at == datetime(2026, 11, 24, tzinfo=timezone.utc)
    assert error.retry_after_s == 8 * 3600 + 30 * 60
    # Refused: nothing counted, and exactly the rest of the quota still fits.
    assert usage(db) == {"2026-11-23": 90}
    assert consume(db, 10, daily=100).used_today == 100


def test_exhausted_monthly_quota_resets_on_the_first_of_next_month(db: Database) -> None:
    consume(db, 500, monthly=1000, now=NOW - timedelta(days=10))
    consume(db, 400, monthly=1000)

    with pytest.raises(QuotaExceededError) as caught:
        consume(db, 101, daily=5000, monthly=1000)

    error = caught.value
    assert error.which == "monthly"
    assert (error.limit, error.used) == (1000, 900)
    assert error.reset_at == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert error.retry_after_s == int((error.reset_at - NOW).total_seconds())


def test_monthly_reset_in_december_is_next_january(db: Database) -> None:
    december = datetime(2026, 12, 15, tzinfo=timezone.utc)
    with pytest.raises(QuotaExceededError) as caught:
        consume(db, 2, monthly=1, now=december)
    assert caught.value.reset_at == datetime(2027, 1, 1, tzinfo=timezone.utc)


def test_when_both_are_exhausted_the_later_reset_is_reported(db: Database) -> None:
    consume(db, 10)
    with pytest.raises(QuotaExceededError) as caught:
        consume(db, 1, daily=10, monthly=10)
    assert caught.value.which == "monthly"


def test_a_rolled_back_transaction_counts_nothing(db: Database) -> None:
    class Boom(Exception):
        pass

    def push_then_fail() -> None:
        with db.transaction() as tx:
            quota.consume(
                tx, tenant_id=TENANT, records=80, daily_limit=100, monthly_limit=None, now=NOW
            )
            raise Boom()

    with pytest.raises(Boom):
        push_then_fail()

    assert usage(db) == {}
    assert alerts(db) == []
    assert consume(db, 100, daily=100).used_today == 100


def test_threshold_event_is_enqueued_exactly_once_per_period(db: Database) -> None:
    consume(db, 79, daily=100)
    assert alerts(db) == []
    consume(db, 1, daily=100)  # 80 %: crosses
    consume(db, 5, daily=100)  # 85 %: already crossed
    consume(db, 15, daily=100)  # 100 %
    with pytest.raises(QuotaExceededError):
        consume(db, 1, daily=100)

    assert alerts(db) == [
        {
            "type": "quota.threshold",
            "status": "firing",
            "severity": "warning",
            "labels": {
                "alertname": "QuotaThreshold",
                "tenant_id": TENANT,
                "quota": "daily",
                "period": "2026-11-23",
            },
            "tenant_id": TENANT,
            "which": "daily",
            "period": "2026-11-23",
            "limit": 100,
            "used": 80,
            "percent": 80,
            "resolve_at": "2026-11-24T00:00:00+00:00",
            "dedupe_key": f"quota80:{TENANT}:2026-11-23",
        }
    ]


def test_threshold_events_for_day_and_month_are_separate(db: Database) -> None:
    consume(db, 850, daily=1000, monthly=1000)  # both cross at once
    consume(db, 10, daily=1000, monthly=1000, now=NOW + timedelta(days=1))

    found = alerts(db)
    assert [(a["period"], a["which"], a["used"]) for a in found] == [
        ("2026-11-23", "daily", 850),
        ("2026-11", "monthly", 850),
    ]
    assert found[1]["dedupe_key"] == f"quota80:{TENANT}:2026-11"
    assert found[1]["resolve_at"] == "2026-12-01T00:00:00+00:00"


def test_a_big_jump_past_the_threshold_alerts_once(db: Database) -> None:
    consume(db, 10, daily=100)
    consume(db, 0, daily=100)  # no records: no crossing
    assert alerts(db) == []
    consume(db, 85, daily=100)  # 10 % -> 95 %
    consume(db, 5, daily=100)
    assert [(a["used"], a["limit"]) for a in alerts(db)] == [(95, 100)]


def test_threshold_alert_rolls_back_with_the_push(db: Database) -> None:
    class Boom(Exception):
        pass

    def push_then_fail() -> None:
        with db.transaction() as tx:
            quota.consume(
                tx, tenant_id=TENANT, records=90, daily_limit=100, monthly_limit=None, now=NOW
            )
            raise Boom()

    with pytest.raises(Boom):
        push_then_fail()
    assert alerts(db) == []
    consume(db, 90, daily=100)
    assert len(alerts(db)) == 1


def test_rejects_bad_arguments(db: Database) -> None:
    with pytest.raises(ValueError, match="negative"):
        consume(db, -1)
    with pytest.raises(ValueError, match="timezone"):
        consume(db, 1, now=datetime(2026, 11, 23))


def test_concurrent_transactions_count_exactly(db: Database, clean_db: str) -> None:
    threads_n, pushes, size, daily = 8, 12, 7, 500
    accepted: list[int] = []
    refused: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads_n)

    def work() -> None:
        own = Database(clean_db)
        try:
            barrier.wait()
            for _ in range(pushes):
                try:
                    consume(own, size, daily=daily, monthly=daily * 10)
                except QuotaExceededError:
                    with lock:
                        refused.append(size)
                else:
                    with lock:
                        accepted.append(size)
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    # 96 pushes of 7 = 672 offered; 71 fit in 500 (497), the rest are refused.
    assert sum(accepted) == usage(db)["2026-11-23"] == 497
    assert len(accepted) + len(refused) == threads_n * pushes
    assert len(alerts(db)) == 1


def test_concurrent_transactions_across_midnight_respect_the_month(
    db: Database, clean_db: str
) -> None:
    """Pushes stamped on two different days of one month share the monthly limit exactly."""
    before = datetime(2026, 11, 23, 23, 59, 59, tzinfo=timezone.utc)
    after = datetime(2026, 11, 24, 0, 0, 1, tzinfo=timezone.utc)
    accepted: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def work(now: datetime) -> None:
        own = Database(clean_db)
        try:
            barrier.wait()
            for _ in range(10):
                try:
                    consume(own, 3, monthly=100, now=now)
                except QuotaExceededError:
                    continue
                with lock:
                    accepted.append(3)
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=work, args=(t,)) for t in [before, after] * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    assert sum(usage(db).values()) == sum(accepted) == 99


def test_outbox_claim_sees_the_alert(db: Database) -> None:
    consume(db, 80, daily=100)
    (item,) = outbox.claim(db, topics=[quota.ALERT_TOPIC], limit=10)
    assert item.payload["type"] == "quota.threshold"
