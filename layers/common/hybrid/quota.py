"""Daily and monthly record quotas, counted exactly in the caller's write transaction.

Usage lives in `tenant_usage`, one row per (tenant, UTC day); the month's usage is the sum of
its days. `consume` first takes a transaction-scoped advisory lock per (tenant, UTC month), so
concurrent pushes of one tenant count one after the other (also across a midnight, where they
touch different day rows), then reads the usage, checks the limits and only then adds the
records. A refused push therefore writes nothing, and a rolled-back push counts nothing.

The lock is held until the caller's transaction ends: call `consume` late in the write
transaction to keep a tenant's concurrent pushes from waiting on each other longer than needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Literal

from hybrid import outbox
from hybrid.alerts.announce import ALERT_TOPIC
from hybrid.db import Transaction
from hybrid.errors import DomainError

ALERT_TYPE = "quota.threshold"
THRESHOLD_PERCENT = 80
# First key of the two-key advisory lock: the quota lock's namespace.
_LOCK_NAMESPACE = 0x51_07A0

Period = Literal["daily", "monthly"]


@dataclass(frozen=True)
class QuotaState:
    """Usage after the consumed records; a limit of None means unlimited."""

    used_today: int
    used_month: int
    daily_limit: int | None
    monthly_limit: int | None


class QuotaExceededError(DomainError):
    """Accepting the records would exceed a quota (429 with Retry-After until `reset_at`)."""

    def __init__(
        self, which: Period, limit: int, used: int, reset_at: datetime, retry_after_s: int
    ) -> None:
        super().__init__(f"{which} record quota of {limit} exhausted ({used} used)")
        self.which: Period = which
        self.limit = limit
        self.used = used
        self.reset_at = reset_at
        self.retry_after_s = retry_after_s


def consume(
    tx: Transaction,
    *,
    tenant_id: str,
    records: int,
    daily_limit: int | None,
    monthly_limit: int | None,
    now: datetime,
) -> QuotaState:
    """Count `records` against the tenant's quotas, or raise QuotaExceededError (nothing
    counted; the caller rolls back its writes). Enqueues one `alerts` outbox event the first
    time a period's usage reaches 80 % of its limit."""
    if records < 0:
        raise ValueError("records must not be negative")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    utc_now = now.astimezone(timezone.utc)
    day = utc_now.date()
    month_start = day.replace(day=1)
    next_month = _next_month(month_start)

    tx.execute(
        "SELECT pg_advisory_xact_lock(CAST(:namespace AS integer), hashtext(:lock_key))",
        namespace=_LOCK_NAMESPACE,
        lock_key=f"{tenant_id}:{month_start:%Y-%m}",
    )
    # A new statement after the lock: its snapshot holds every earlier holder's commit.
    row = tx.one(
        "SELECT coalesce(sum(records) FILTER (WHERE day = :day), 0) AS today, "
        "coalesce(sum(records), 0) AS month FROM tenant_usage "
        "WHERE tenant_id = :tenant_id AND day >= :month_start AND day < :next_month",
        tenant_id=tenant_id,
        day=day,
        month_start=month_start,
        next_month=next_month,
    )
    assert row is not None
    today_before, month_before = int(row["today"]), int(row["month"])

    if monthly_limit is not None and month_before + records > monthly_limit:
        raise _exceeded("monthly", monthly_limit, month_before, _midnight(next_month), utc_now)
    if daily_limit is not None and today_before + records > daily_limit:
        reset = _midnight(day + timedelta(days=1))
        raise _exceeded("daily", daily_limit, today_before, reset, utc_now)

    if records:
        tx.execute(
            "INSERT INTO tenant_usage (tenant_id, day, records) VALUES (:tenant_id, :day, :n) "
            "ON CONFLICT (tenant_id, day) DO UPDATE "
            "SET records = tenant_usage.records + EXCLUDED.records",
            tenant_id=tenant_id,
            day=day,
            n=records,
        )
    state = QuotaState(
        used_today=today_before + records,
        used_month=month_before + records,
        daily_limit=daily_limit,
        monthly_limit=monthly_limit,
    )
    _alert_on_threshold(
        tx,
        tenant_id,
        "daily",
        day.isoformat(),
        daily_limit,
        today_before,
        state.used_today,
        ends=_midnight(day + timedelta(days=1)),
    )
    _alert_on_threshold(
        tx,
        tenant_id,
        "monthly",
        f"{month_start:%Y-%m}",
        monthly_limit,
        month_before,
        state.used_month,
        ends=_midnight(next_month),
    )
    return state


def _alert_on_threshold(
    tx: Transaction,
    tenant_id: str,
    which: Period,
    period: str,
    limit: int | None,
    before: int,
    after: int,
    *,
    ends: datetime,
) -> None:
    """One outbox event when usage crosses the threshold; the dedupe key keeps it one. The
    alert resolves itself when the period ends (`resolve_at`): the usage starts again."""
    if limit is None or limit <= 0:
        return
    threshold = limit * THRESHOLD_PERCENT
    if not before * 100 < threshold <= after * 100:
        return
    outbox.enqueue(
        tx,
        ALERT_TOPIC,
        {
            "type": ALERT_TYPE,
            "status": "firing",
            "severity": "warning",
            "labels": {
                "alertname": "QuotaThreshold",
                "tenant_id": tenant_id,
                "quota": which,
                "period": period,
            },
            "tenant_id": tenant_id,
            "which": which,
            "period": period,
            "limit": limit,
            "used": after,
            "percent": THRESHOLD_PERCENT,
            "resolve_at": ends.isoformat(),
        },
        dedupe_key=f"quota{THRESHOLD_PERCENT}:{tenant_id}:{period}",
    )


def _exceeded(
    which: Period, limit: int, used: int, reset_at: datetime, now: datetime
) -> QuotaExceededError:
    retry_after = max(1, math.ceil((reset_at - now).total_seconds()))
    return QuotaExceededError(which, limit, used, reset_at, retry_after)


def _next_month(month_start: date) -> date:
    if month_start.month == 12:
        return date(month_start.year + 1, 1, 1)
    return date(month_start.year, month_start.month + 1, 1)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)
