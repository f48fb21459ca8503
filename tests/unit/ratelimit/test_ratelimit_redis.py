"""GCRA rate limits through the shared stack's real Redis: bursts, atomic multi-limit checks,
two processes on one limit, and Redis going down and coming back."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from typing import Any

import pytest
from structlog.testing import capture_logs

from hybrid.cache import redis_client
from hybrid.ratelimit import DEGRADED_MESSAGE, Decision, Limit, LimitState, RateLimiter


@pytest.fixture
def redis_url(endpoints: Any) -> str:
    return str(endpoints.redis_url)


@pytest.fixture
def limiter(redis_url: str) -> RateLimiter:
    return RateLimiter(lambda: redis_client(redis_url))


def tenant() -> str:
    return f"ten_{uuid.uuid4().hex[:12]}"


def test_first_request_headers(limiter: RateLimiter) -> None:
    decision = limiter.check(tenant(), [Limit("tenant", 600)])
    assert decision == Decision(True, 0, [LimitState("tenant", 600, 599, 1)])
    assert decision.headers() == {
        "RateLimit-Policy": '"tenant";q=600;w=60',
        "RateLimit": '"tenant";r=599;t=1',
    }


def test_a_burst_over_the_limit_is_denied_with_the_right_retry_after(
    limiter: RateLimiter,
) -> None:
    who = tenant()
    limit = Limit("tenant", 6, burst=3)  # one every 10 s, three at once

    decisions = [limiter.check(who, [limit]) for _ in range(5)]

    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.limits[0].remaining for d in decisions] == [2, 1, 0, 0, 0]
    denied = decisions[3]
    assert denied.retry_after_s == 10
    assert denied.limits == [LimitState("tenant", 6, 0, 10)]
    assert denied.headers() == {
        "RateLimit-Policy": '"tenant";q=6;w=60',
        "RateLimit": '"tenant";r=0;t=10',
        "Retry-After": "10",
    }
    assert not denied.degraded


def test_capacity_comes_back_at_the_emission_rate(limiter: RateLimiter) -> None:
    who = tenant()
    limit = Limit("tenant", 1200, burst=2)  # one every 50 ms
    assert limiter.check(who, [limit]).allowed
    assert limiter.check(who, [limit]).allowed
    assert not limiter.check(who, [limit]).allowed
    time.sleep(0.12)
    assert limiter.check(who, [limit]).allowed


def test_cost_consumes_several_units(limiter: RateLimiter) -> None:
    who = tenant()
    limit = Limit("records", 600, burst=100)
    assert limiter.check(who, [limit], cost=60).limits[0].remaining == 40
    denied = limiter.check(who, [limit], cost=50)
    assert not denied.allowed
    assert denied.limits[0].remaining == 40
    assert limiter.check(who, [limit], cost=40).allowed


def test_cost_zero_reads_without_consuming(limiter: RateLimiter) -> None:
    who = tenant()
    limit = Limit("tenant", 60, burst=2)
    assert limiter.check(who, [limit], cost=0).limits[0].remaining == 2
    limiter.check(who, [limit])
    assert limiter.check(who, [limit], cost=0).limits[0].remaining == 1


def test_nothing_is_consumed_when_one_limit_denies(limiter: RateLimiter) -> None:
    who = tenant()
    wide = Limit("tenant", 600, burst=10)
    narrow = Limit("key", 60, burst=2, partition="key_1")

    assert limiter.check(who, [wide, narrow]).allowed
    assert limiter.check(who, [wide, narrow]).allowed
    denied = limiter.check(who, [wide, narrow])

    assert not denied.allowed
    assert [s.remaining for s in denied.limits] == [8, 0]
    assert denied.retry_after_s == 1
    # The tenant limit was not charged for the denied request.
    assert limiter.check(who, [wide]).limits[0].remaining == 7
    # Another key of the same tenant has its own counter.
    other_key = Limit("key", 60, burst=2, partition="key_2")
    assert limiter.check(who, [wide, other_key]).allowed


def test_keys_are_hash_tagged_per_tenant_and_expire(limiter: RateLimiter, redis_url: str) -> None:
    who = tenant()
    limiter.check(who, [Limit("tenant", 600), Limit("key", 60, partition="key_1")])
    client = redis_client(redis_url)
    keys = sorted(k.decode() for k in client.scan_iter(match=f"rl:{{{who}}}:*"))
    assert keys == [f"rl:{{{who}}}:key:key_1", f"rl:{{{who}}}:tenant"]
    for key in keys:
        assert 0 < client.pttl(key) <= 1001 + 1000


def test_the_redis_clock_decides_not_the_instance_clock(redis_url: str) -> None:
    """An instance whose clock is far off still gets the same answers."""
    skewed = RateLimiter(lambda: redis_client(redis_url), clock=lambda: 1e12)
    normal = RateLimiter(lambda: redis_client(redis_url))
    who = tenant()
    limit = Limit("tenant", 6, burst=2)
    assert skewed.check(who, [limit]).allowed
    assert normal.check(who, [limit]).allowed
    denied = skewed.check(who, [limit])
    assert not denied.allowed
    assert not denied.degraded
    assert 9 <= denied.retry_after_s <= 10


def _hammer(
    url: str,
    who: str,
    per_minute: int,
    burst: int,
    duration: float,
    barrier: Any,
    results: Any,
) -> None:
    """One process checking one limit as fast as it can; reports its allowed timestamps."""
    from hybrid.cache import redis_client
    from hybrid.ratelimit import Limit, RateLimiter

    limiter = RateLimiter(lambda: redis_client(url))
    limit = Limit("tenant", per_minute, burst=burst)
    limiter.check(who, [limit], cost=0)  # connect and load the script before the start
    barrier.wait(timeout=60)
    allowed: list[float] = []
    checks = degraded = 0
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        decision = limiter.check(who, [limit])
        checks += 1
        degraded += decision.degraded
        if decision.allowed:
            allowed.append(time.time())
    results.put((allowed, checks, degraded))


@pytest.mark.slow
def test_two_processes_never_exceed_the_limit_together(redis_url: str) -> None:
    per_minute, burst, duration = 600, 5, 3.0  # 10 a second after a burst of 5
    who = tenant()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    processes = [
        context.Process(
            target=_hammer, args=(redis_url, who, per_minute, burst, duration, barrier, results)
        )
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    try:
        reports = [results.get(timeout=90) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()

    stamps = sorted(stamp for allowed, _checks, _degraded in reports for stamp in allowed)
    checks = sum(report[1] for report in reports)
    assert sum(report[2] for report in reports) == 0  # Redis decided every check
    assert all(report[0] for report in reports)  # both processes got through sometimes
    assert checks > 2 * len(stamps)  # they really hammered
    rate = per_minute / 60
    window = stamps[-1] - stamps[0]
    assert len(stamps) <= burst + rate * window + 1
    assert len(stamps) >= burst + rate * window * 0.8 - 2
    # No one-second window anywhere holds more than the burst plus a second's worth.
    for index, start in enumerate(stamps):
        inside = sum(1 for stamp in stamps[index:] if stamp <= start + 1.0)
        assert inside <= burst + rate + 2


def test_redis_down_falls_back_and_recovers(stack: Any, redis_url: str) -> None:
    if not hasattr(stack, "stop_redis"):
        pytest.skip("Redis is external: it cannot be stopped here")
    limiter = RateLimiter(lambda: redis_client(redis_url), assumed_instances=10, redis_retry_s=0.2)
    who = tenant()
    limit = Limit("tenant", 600, burst=50)  # locally 60/min with a burst of 5
    assert not limiter.check(who, [limit]).degraded

    stack.stop_redis()
    try:
        with capture_logs() as logs:
            started = time.monotonic()
            decisions = [limiter.check(who, [limit]) for _ in range(20)]
            elapsed = time.monotonic() - started
    finally:
        stack.start_redis()

    assert all(d.degraded for d in decisions)
    # Conservative: the burst of 5 plus at most one refill a second while this ran.
    assert 5 <= sum(d.allowed for d in decisions) <= 5 + int(elapsed) + 1
    assert decisions[-1].headers()["RateLimit-Policy"] == '"tenant";q=60;w=60'
    assert not decisions[-1].allowed
    assert decisions[-1].headers()["Retry-After"] == "1"
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [w["event"] for w in warnings] == [DEGRADED_MESSAGE]

    time.sleep(0.3)
    recovered = limiter.check(who, [limit])
    assert not recovered.degraded
    assert recovered.limits[0].quota == 600
